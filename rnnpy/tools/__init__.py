"""Tools around the models: gradient checking, the benchmark, plots, the command

line, model summaries, text generation, and the distributed benchmark.
"""
