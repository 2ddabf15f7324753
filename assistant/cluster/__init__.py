"""Building an index on a Ray cluster (``python -m assistant build --engine ray``).

The same index folder as a local build (:mod:`assistant.search.build`), made by Ray Data:
the driver reads the documents into blocks (:mod:`assistant.cluster.ray_build`), tasks chunk
them, a pool of actors embeds the passages and sentences with the float32 ONNX encoder (one
actor a CPU, batches sized by tokens: :mod:`assistant.cluster.stages`), Parquet shards hold
the results, and the driver assembles them into the folder (:mod:`assistant.cluster.assemble`).

Ray is an optional extra (``pip install '.[cluster]'``); nothing outside this package imports
Ray, and only the ``build`` command imports this package, when asked for the Ray engine.
Measurements and projections: docs/scale.md.
"""
