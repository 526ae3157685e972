"""The image store: content-addressed blobs, OCI configs and manifests, tags, and overlay2 layers.

For the container subsystem (`engine.images` is the `store.ImageStore`):
    image = engine.images.resolve("busybox")            # Image; NotFound("No such image: busybox")
    image.id, image.config["config"]["Cmd"], image.chain_ids
    driver = engine.images.driver                       # storage.overlay2.Overlay2Driver
    driver.create_rw_layer(container_id, image)         # overlay2/<id>/{diff,work,merged}, link, lower
    rootfs = driver.mount(container_id)                 # idempotent; Path of the merged dir
    driver.rw_layer_size(container_id)                  # SizeRw
    driver.unmount(container_id); driver.remove_rw_layer(container_id)   # both idempotent
    engine.images.set_in_use_checker(lambda image_id: [ids of containers using it])
The checker runs under the store's lock: it must not call back into the image store.

For the builder:
    layer = engine.images.create_layer_from_tar(tar_stream, parent_chain_id)   # Layer
    tar_bytes = pack.iter_dir_tar(diff_dir)          # a deterministic layer tar from a directory diff
    image = engine.images.commit(config_dict, tags=["app:1"])   # config's rootfs.diff_ids name the layers
    engine.images.commit(config_dict, build_cache=True)         # a step result: hidden from `images` and
    engine.images.build_cache_images()                          # image prune while untagged; builder prune
"""
