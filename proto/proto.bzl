"""Turns a .proto file into a C++ library through Debian's protoc and grpc_cpp_plugin.

swarm_proto_library(name, src, deps, grpc) compiles one file. `deps` are other
swarm_proto_library targets whose files `src` imports; their .proto files are made visible to
protoc and their C++ libraries are linked. With grpc = True the gRPC service stubs are
generated as well. Well-known types (google/protobuf/*.proto) come from /usr/include.
"""

def swarm_proto_library(name, src, deps = [], grpc = False, visibility = None):
    if not src.endswith(".proto"):
        fail("src must be a .proto file")
    base = src[:-len(".proto")]
    outs = [base + ".pb.h", base + ".pb.cc"]
    plugin_args = ""
    if grpc:
        outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]
        plugin_args = "--grpc_out=$(GENDIR) --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin "

    # The .proto files of this library and of everything it imports.
    native.filegroup(
        name = name + "_files",
        srcs = [src] + [d + "_files" for d in deps],
        visibility = visibility,
    )
    native.genrule(
        name = name + "_gen",
        srcs = [name + "_files"],
        outs = outs,
        cmd = "/usr/bin/protoc -I. --cpp_out=$(GENDIR) " + plugin_args +
              native.package_name() + "/" + src,
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        deps = deps + ["//third_party:protobuf"] + (["//third_party:grpc"] if grpc else []),
        visibility = visibility,
    )
