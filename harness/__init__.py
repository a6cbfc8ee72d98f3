"""What the tests and the benchmarks share: a real `hat serve` on a free port, the fixture catalog, fuzzing,
open-loop load and fault injection against a real server, and the CTranslate2 conversion of a SubTransformer.
An importable package (installed with the project), so neither side reaches into the other through sys.path."""
