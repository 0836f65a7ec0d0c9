"""PIEs (pruning identified exemplars), Q-Score, PIE overlaps and UMAP for supervised populations. See README.md."""
from common.cli import run_main
from common.studies.corti2022.pies import main

if __name__ == "__main__":
    run_main(lambda argv: main("supervised", argv))
