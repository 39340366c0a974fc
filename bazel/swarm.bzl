"""Compiler options and rule wrappers shared by every target of ours (one place, STYLE.md 9)."""

# Our own code builds warning-free; -Werror keeps it that way. Generated code (protobuf, gRPC)
# does not use these options.
SWARM_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-sign-compare",
    # Designated initializers that leave fields at their defaults are intended.
    "-Wno-missing-field-initializers",
]

def swarm_cc_library(name, copts = [], visibility = None, **kwargs):
    native.cc_library(
        name = name,
        copts = SWARM_COPTS + copts,
        visibility = visibility if visibility != None else ["//:__subpackages__"],
        **kwargs
    )

def swarm_cc_binary(name, copts = [], **kwargs):
    native.cc_binary(
        name = name,
        copts = SWARM_COPTS + copts,
        **kwargs
    )

def swarm_cc_test(name, copts = [], deps = [], size = "small", **kwargs):
    native.cc_test(
        name = name,
        size = size,
        copts = SWARM_COPTS + copts,
        deps = deps + ["//third_party:gtest_main"],
        **kwargs
    )

def swarm_cc_benchmark(name, copts = [], deps = [], **kwargs):
    native.cc_binary(
        name = name,
        copts = SWARM_COPTS + copts,
        deps = deps + ["//third_party:benchmark"],
        **kwargs
    )
