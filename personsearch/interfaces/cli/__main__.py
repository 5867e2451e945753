"""``python -m personsearch.interfaces.cli``: the command line as a module, the way ``main`` re-runs
itself with tuned malloc and torchrun starts a training command on several processes."""

from personsearch.interfaces.cli import main

if __name__ == "__main__":
    main()
