"""Measuring a model: COCO evaluation through pycocotools, confusion matrices and per-class
results (``evaluate``), and Matterport's AP/recall functions (``metrics``)."""
