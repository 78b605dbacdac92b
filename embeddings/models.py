"""The embeddings app's models, as Django finds them (`<app>.models`).

Each capability keeps its tables in its own package; this module only gathers
them so that Django registers them under the `embeddings` app label (the
migrations and table names stay as they were).
"""

from embeddings.clustering.models import Cluster, ClusterFace, ClusteringJob
from embeddings.indexing.models import IndexJob, IndexJobAsset, InlineImage
from embeddings.store.models import Asset, Collection, DeletionRequest, Face, GalleryState

__all__ = ["Asset", "Cluster", "ClusterFace", "ClusteringJob", "Collection", "DeletionRequest", "Face",
           "GalleryState", "IndexJob", "IndexJobAsset", "InlineImage"]
