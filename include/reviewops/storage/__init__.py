"""Files under the data root, a local folder or an object store prefix (``gs://…``):
``paths`` (URIs and the ``Layout`` of artifacts), ``io`` (whole-file reads and atomic
writes, content hashes) and ``publish`` (versions of several files published at once)."""
