"""Train supervised (cross-entropy) models, dense or with gradual magnitude pruning. See README.md."""
from common.cli import run_main
from common.studies.corti2022.training import main

if __name__ == "__main__":
    run_main(lambda argv: main("supervised", argv))
