"""Reproduce the study end to end: `python reproduce.py --preset demo` (digits, CPU minutes) or
`python reproduce.py --preset paper --cuda_device 0` (CIFAR-10, the paper's recipe). See README.md."""
from common.cli import run_main
from common.studies.corti2022.reproduce import main

if __name__ == "__main__":
    run_main(lambda argv: main(argv))
