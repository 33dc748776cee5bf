"""`python -m agora.generators.llama_server [--no-extra-bufts] <llama_cpp.server args>`: llama-cpp-python's
OpenAI-compatible server, with the one model parameter its command line does not expose.

ggml's CPU backend repacks weights into "extra buffer types" for faster kernels. On Intel CPUs with AMX, the AMX
buffer type of llama-cpp-python 0.3.36 (built from source, as pip does) crashes the process with SIGSEGV in
`ggml_backend_amx_mul_mat` on the first decode; `/v1/models` still answers. llama.cpp's own server has
`--no-repack` for this (`use_extra_bufts = false`); llama-cpp-python's server has no such flag, so this wrapper sets
the field in the default model parameters before the server loads the model, then hands over to the stock server.

`--grammar-last` changes how a request's grammar (llama.cpp GBNF, the embedded generator's `constrain`) meets the
sampler. llama-cpp-python 0.3.36 puts the grammar first in its sampler chain, so every token checks the whole
vocabulary (49,152 entries for SmolLM2) against the grammar: about 18 tokens/s against 54 without a grammar on 2
cores. llama.cpp's own sampler (common/sampling.cpp) samples first and asks the grammar only about the token drawn;
when the grammar rejects it, it samples again with the grammar applied to every candidate. The token is then always
one the grammar accepts; what differs from grammar-first is only that top-k/top-p cut the model's distribution
before the grammar filters it, not after (the order llama.cpp's server uses).
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


class GrammarLastSampler:
    """A sampler chain plus a grammar, used as llama.cpp's common sampler does: sample, check, resample if needed.

    It stands in for llama-cpp-python's `LlamaSampler` where `Llama` uses one (`.sample(ctx, idx)`, `.close()`)."""

    def __init__(self, chain, grammar, n_vocab: int):
        from llama_cpp._internals import LlamaTokenDataArray

        self.chain, self.grammar, self.n_vocab = chain, grammar, n_vocab
        self.candidates = LlamaTokenDataArray(n_vocab=n_vocab)
        self.resampled = 0   # how many tokens the grammar rejected (for tests)

    def _draw(self, logits, grammar_first: bool) -> int:
        import ctypes

        import llama_cpp.llama_cpp as lib

        c = self.candidates
        c.copy_logits(logits)
        c.candidates.selected = -1
        ref = ctypes.byref(c.candidates)
        if grammar_first:
            lib.llama_sampler_apply(self.grammar.sampler, ref)
        lib.llama_sampler_apply(self.chain.sampler, ref)
        return int(c.candidates_data.id[c.candidates.selected])

    def _accepts(self, token: int) -> bool:
        import ctypes

        import llama_cpp.llama_cpp as lib

        one = lib.llama_token_data(id=token, logit=1.0, p=0.0)
        arr = lib.llama_token_data_array(data=ctypes.pointer(one), size=1, selected=-1, sorted=False)
        lib.llama_sampler_apply(self.grammar.sampler, ctypes.byref(arr))
        return one.logit != float("-inf")

    def sample(self, ctx, idx: int = -1) -> int:
        import numpy as np

        import llama_cpp.llama_cpp as lib

        logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx.ctx, idx), shape=(self.n_vocab,))
        token = self._draw(logits, grammar_first=False)
        if not self._accepts(token):
            self.resampled += 1
            token = self._draw(logits, grammar_first=True)
        lib.llama_sampler_accept(self.grammar.sampler, token)
        lib.llama_sampler_accept(self.chain.sampler, token)
        return token

    def close(self) -> None:
        self.chain.close()
        self.grammar.close()


def sample_grammar_last() -> None:
    """Every `Llama` in this process from now on checks a grammar after sampling, not before (module docstring)."""
    from llama_cpp import llama as llama_module
    from llama_cpp._internals import LlamaSampler

    build = llama_module.Llama._init_sampler

    def init_sampler(self, *args, grammar=None, **kwargs):
        chain = build(self, *args, grammar=None, **kwargs)
        if grammar is None:
            return chain
        only_grammar = LlamaSampler()
        only_grammar.add_grammar(self._model, grammar)
        return GrammarLastSampler(chain, only_grammar, self._n_vocab)

    llama_module.Llama._init_sampler = init_sampler


def main(argv: list[str]) -> None:
    if "--no-extra-bufts" in argv:
        argv = [a for a in argv if a != "--no-extra-bufts"]
        disable_extra_buffer_types()
    if "--grammar-last" in argv:
        argv = [a for a in argv if a != "--grammar-last"]
        sample_grammar_last()
    from llama_cpp.server.__main__ import main as serve

    sys.argv = ["llama_cpp.server", *argv]
    serve()


if __name__ == "__main__":
    main(sys.argv[1:])
