"""`python -m agora.generators.llama_server [--no-extra-bufts] <llama_cpp.server args>`: llama-cpp-python's
OpenAI-compatible server, with the one model parameter its command line does not expose.

ggml's CPU backend repacks weights into "extra buffer types" for faster kernels. On Intel CPUs with AMX, the AMX
buffer type of llama-cpp-python 0.3.36 (built from source, as pip does) crashes the process with SIGSEGV in
`ggml_backend_amx_mul_mat` on the first decode; `/v1/models` still answers. llama.cpp's own server has
`--no-repack` for this (`use_extra_bufts = false`); llama-cpp-python's server has no such flag, so this wrapper sets
the field in the default model parameters before the server loads the model, then hands over to the stock server.
"""
from __future__ import annotations

import sys


def disable_extra_buffer_types() -> None:
    """Every model loaded in this process from now on skips ggml's extra (repacking) buffer types."""
    import llama_cpp.llama_cpp as lib

    default = lib.llama_model_default_params

    def params():
        p = default()
        p.use_extra_bufts = False
        return p

    lib.llama_model_default_params = params   # llama.py looks it up on the module at each load


def main(argv: list[str]) -> None:
    if "--no-extra-bufts" in argv:
        argv = [a for a in argv if a != "--no-extra-bufts"]
        disable_extra_buffer_types()
    from llama_cpp.server.__main__ import main as serve

    sys.argv = ["llama_cpp.server", *argv]
    serve()


if __name__ == "__main__":
    main(sys.argv[1:])
