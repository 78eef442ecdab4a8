"""tests/fuzz/ holds fuzzing harnesses run by ``make fuzz``, not tests: keep pytest (and its doctest collection) out."""

collect_ignore = ["atheris_files.py"]
