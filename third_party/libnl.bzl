"""The include flags of libnl (`pkg-config --cflags libnl-route-3.0`) for the one library that includes its headers."""

LIBNL_COPTS = ["-isystem/usr/include/libnl3"]
