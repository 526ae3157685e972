"""The image store: content-addressed blobs, OCI configs and manifests, tags, and overlay2 layers.

`store.ImageStore` is the service; `storage.overlay2.Overlay2Driver` owns the layer directories and mounts.
"""
