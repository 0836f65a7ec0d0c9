"""Prune trained supervised models once (global magnitude by default) and finetune them with the masks held."""
from common.cli import run_main
from common.studies.corti2022.finetune import main

if __name__ == "__main__":
    run_main(lambda argv: main("supervised", argv))
