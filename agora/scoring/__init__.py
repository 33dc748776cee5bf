"""Every scorer in one place: how a completion is judged right or wrong, whatever the domain.

- `math_answers`: the final answer of a math completion, extracted and compared (GSM8K, MATH);
- `sandbox`: model-written Python run in isolation, tests and all (HumanEval, MBPP and their EvalPlus versions);
- `ifeval`: IFEval's and IFBench's verifiable-instruction checkers, offline;
- `judge`: the pairwise LLM judge of AlpacaEval 2.0 and Arena-Hard v0.1.

Each has a `VERSION` that enters the evaluation key of the domains that use it (a domain's `SCORER_VERSION`).
Domains bind benchmarks to scorers; the evaluate stage calls the domain (or, for judged benchmarks, `judge`).
"""
