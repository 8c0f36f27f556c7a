"""Explanations: class activation maps, where to take them, how to show them, and how well they localise.

Modules:
    layers: finding CAM layers (:func:`~common.explain.layers.last_conv_layer`,
        :func:`~common.explain.layers.finer_layers`) from a model's output shapes.
    methods: the CAM methods on one base, differing in their channel weights
        (Grad-CAM, Grad-CAM++; Score-CAM with its capped, batched masking).
    cams: :class:`~common.explain.cams.CamExplainer` and the helpers around it
        (:func:`~common.explain.cams.compute_cam`, layer CAMs, upsampling, normalising).
    overlays: a CAM over its image, its region and that region's contours.
    contours: the multi-organ paper's contour map, from the image alone (intensity thresholds and
        ``cv2.findContours``): the largest abnormal region, to set beside a CAM.
    scores: pointing game, energy share, IoU and the randomisation check.
    driver: the one explanation driver: CAMs at a layer on a subset of images,
        scored against lesion masks, and the layer chosen on validation.
"""
