//! libbindto.so (placeholder until the shim lands).
