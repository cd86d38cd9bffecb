"""Data: file formats, dataset layouts, synthetic generators and task complexity."""

from segrob.data.case import Case
from segrob.data.dataset import Dataset, load_case, load_dataset
from segrob.data.formats import read_array, write_array
from segrob.data.layouts import discover

__all__ = ["Case", "Dataset", "discover", "load_case", "load_dataset", "read_array", "write_array"]
