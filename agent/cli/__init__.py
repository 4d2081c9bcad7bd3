"""Console scripts (``dopa-train``, ``dopa-evaluate``, ``dopa-probe``, ``dopa-aggregate``) and
the command-line logic that ``scripts/*.py`` share with them. Each module here is a thin layer
over the library: parse, call, print."""
