"""Evals: regression-test agents before a change ships.

A suite is a YAML or JSONL file of cases (``evals/datasets/``); each case seeds an isolated
workspace (its own tenant), runs one or more user turns through an assistant, and is judged
by plain evaluator functions (``evals.evaluators``). ``evals.runner`` runs cases in
parallel over K trials; ``evals.report`` prints, saves and diffs reports and gates on a
baseline. ``relaygraph eval`` is the command line.
"""
