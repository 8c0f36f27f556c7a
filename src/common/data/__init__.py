"""Data: from files on disk to the sample tables and tensors the models see.

Modules:
    folders: class-folder data sets -> sample table; ``read_image`` for any image file.
    dicom: DICOM series -> (H, W, D) volume in Hounsfield units; single slices.
    volume_ops: resampling, min-max scaling and Sobel edges of volumes.
    volume_sets: DICOM series in class folders -> volume table, volumes and masks; ``tf.data`` of volumes.
    phantoms: the embedded, deterministic phantom data sets (a package).
    audit / fingerprints: exact and near-duplicate images (the leakage audit).
    splits: stratified, seeded, grouped train/validation/test splits.
    pipeline / augment: the ``tf.data`` pipeline and its seeded augmentation.
    manifest / fetch: real data sets' manifests, verification and download.
"""
