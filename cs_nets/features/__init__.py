"""Image -> feature vector transforms: raw pixels, HOG, color histograms, bag of words; (r, θ) of points.

The ``features`` config section is an ordered list of transforms, e.g.
``[{type: hog, cell: 8, bins: 9}, {type: color_hist, bins: 10, space: hsv}]``;
each image's features are the transforms' outputs concatenated in that order.
Outputs are raw (not standardized): the training pipeline standardizes them.

  spec.py     normalize_transforms, feature_dim, feature_weights: validate the config, size and weight the output
  hog.py      hog_features: gradient-orientation histograms per cell
  color.py    color_histogram: hue (HSV) or per-channel RGB histograms
  bow.py      fit_codebook (training split only), Encoder: bag of visual words
  polar.py    polar_features: (x, y) -> (r, θ) for 2-D points
  extract.py  extract_features: (N, 3 S S) uint8 rows of S x S images -> (N, F) float32, chunked;
              extract_views: the same for views of the images (mirrored, moved: views.py)
  cache.py    cached_features: the same, stored as .npy in a cache folder; cached_codebook: bow codebooks
"""

from cs_nets.features.bow import Codebook, Encoder, encode_images, fit_codebook
from cs_nets.features.cache import cache_path, cached_codebook, cached_features, codebook_path
from cs_nets.features.color import color_histogram
from cs_nets.features.extract import extract_features, extract_views
from cs_nets.features.hog import hog_features
from cs_nets.features.polar import polar_features
from cs_nets.features.spec import FEATURE_TYPES, feature_dim, feature_weights, is_point_transforms, normalize_transforms

__all__ = [
    "FEATURE_TYPES",
    "Codebook",
    "Encoder",
    "cache_path",
    "cached_codebook",
    "cached_features",
    "codebook_path",
    "color_histogram",
    "encode_images",
    "extract_features",
    "extract_views",
    "feature_dim",
    "feature_weights",
    "fit_codebook",
    "hog_features",
    "is_point_transforms",
    "normalize_transforms",
    "polar_features",
]
