# vecvault's N-API addon over usearch's header-only C++ core and NumKong's
# SIMD kernels, both taken from the installed `usearch` npm package (never
# copied here), plus batched AES-GCM/HMAC calls into the OpenSSL that Node
# itself exports to addons (native/crypto.cc), and the live table's bulk hash-table fills (native/tables.cc). Paths are relative to this file: gyp's make generator skips
# objects whose sources are absolute. Build with `node scripts/build-native.mjs`.
{
  "variables": {
    "usearch_root": "<!(node native/locate-usearch.cjs)",
    "nk_probes_h": "<!(node -p \"require('path').resolve('<(usearch_root)/numkong/nk_probes.h')\")",
  },
  "targets": [
    {
      # NumKong's kernels with run-time dispatch. Its probe decides which ISA
      # kernels the *compiler* can build and writes nk_probes.h next to
      # NumKong (as its own numkong.gypi does); the test suite checks that a
      # SIMD kernel is really active at run time.
      "target_name": "vecvault_numkong",
      "type": "static_library",
      "actions": [
        {
          "action_name": "numkong_probe",
          "inputs": ["<(usearch_root)/numkong/probes/probe.js"],
          "outputs": ["<(usearch_root)/numkong/nk_probes.h"],
          "action": ["node", "<(usearch_root)/numkong/probes/probe.js"],
          "message": "Probing ISA capabilities for NumKong",
        }
      ],
      "sources": ["<!@(node native/locate-usearch.cjs --numkong-sources)"],
      "include_dirs": ["<(usearch_root)/numkong/include"],
      "defines": ["NK_NATIVE_F16=0", "NK_NATIVE_BF16=0", "NK_DYNAMIC_DISPATCH=1"],
      "cflags": [
        "-std=c11", "-O3", "-fPIC",
        "-Wno-unknown-pragmas", "-Wno-maybe-uninitialized", "-Wno-cast-function-type",
        "-Wno-switch", "-Wno-psabi", "-Wno-unused-function", "-Wno-unused-variable",
        "-include", "<(nk_probes_h)",
      ],
      "xcode_settings": {"MACOSX_DEPLOYMENT_TARGET": "11.0"},
      "direct_dependent_settings": {
        "include_dirs": ["<(usearch_root)/numkong/include"],
      },
    },
    {
      "target_name": "vecvault_native",
      "sources": ["native/addon.cc", "native/crypto.cc", "native/tables.cc"],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all",
        "vecvault_numkong",
      ],
      "include_dirs": ["<(usearch_root)/include"],
      "defines": [
        "USEARCH_USE_NUMKONG=1",
        "NK_DYNAMIC_DISPATCH=1",
        "USEARCH_USE_OPENMP=0",
        "NAPI_VERSION=8",
        # A worker thread torn down mid-call: node-addon-api cannot throw into a dying environment,
        # and without this it rethrows from its catch handler, which aborts the whole process.
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
      ],
      "cflags_cc": ["-std=c++17", "-O3", "-Wno-unknown-pragmas", "-Wno-maybe-uninitialized", "-Wno-unused-function"],
      "cflags_cc!": ["-std=gnu++17", "-fno-exceptions"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "MACOSX_DEPLOYMENT_TARGET": "11.0",
      },
      "msvs_settings": {
        "VCCLCompilerTool": {"ExceptionHandling": 1, "AdditionalOptions": ["-std:c++17", "/Zc:preprocessor"]},
      },
    },
  ],
}
