"""Prediction depth (k-NN probes per layer) of SupCon models, dense vs pruned, with PIEs. See common/studies/corti2022/depth.py."""
from common.cli import run_main
from common.studies.corti2022.depth import main

if __name__ == "__main__":
    run_main(lambda argv: main("supcon", argv))
