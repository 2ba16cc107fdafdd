{
  "targets": [
    {
      "target_name": "wharf_sha256",
      "sources": ["native/sha256.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "ldflags": ["-Wl,-z,now"]
    }
  ]
}
