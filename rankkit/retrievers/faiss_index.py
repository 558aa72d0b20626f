"""faiss index kinds for dense retrieval: build, search knobs, save and memory-mapped load.

Every kind is an inner-product index (cosine models store unit vectors), one
small class per kind in ``INDEX_TYPES``:

- ``flat``: exact search (``IndexFlatIP``);
- ``hnsw``: graph search (``IndexHNSWFlat``); knobs ``M``, ``ef_construction``,
  search-time ``ef_search`` (raised to ``k`` when smaller, or HNSW returns
  fewer than ``k`` hits);
- ``ivfpq``: inverted lists over product-quantised codes (``IndexIVFPQ``);
  knobs ``nlist``, ``m``, ``nbits``, search-time ``nprobe`` and ``refine``
  (re-score the top ``refine * k`` PQ candidates with the exact vectors, via
  faiss' ``IndexRefine``; 0 = plain PQ scores).

``flat`` and ``hnsw`` keep the exact vectors, which :func:`stored_vectors`
exposes without a copy (also when memory-mapped); ``ivfpq`` keeps only lossy
codes, so the exact vectors live beside it in a second, flat index.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ..errors import ConfigError

#: training vectors per centroid below which faiss warns that clustering is under-fed
_MIN_POINTS = 39


def _faiss() -> Any:
    import faiss

    return faiss


def _check_int(name: str, value: Any, low: int = 1) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ConfigError(f"index option {name} must be an integer >= {low}, got {value!r}")
    return int(value)


class IndexType:
    """One faiss index kind: its build options and its search-time knobs."""

    name = ""
    #: build-time options and their defaults (None = chosen from the data)
    build_options: dict[str, Any] = {}
    #: search-time knobs and their defaults
    search_options: dict[str, Any] = {}
    #: smallest allowed value of a search knob (default 1)
    search_minimum: dict[str, int] = {}
    #: the index keeps exact vectors (else they are stored beside it)
    exact_vectors = True

    def check_options(self, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split ``options`` into (build, search) options; unknown names are an error."""
        known = {**self.build_options, **self.search_options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown option(s) for a {self.name!r} index: {', '.join(unknown)} "
                f"(known: {', '.join(known) or 'none'})")
        build = {k: options.get(k, v) for k, v in self.build_options.items()}
        search = {k: options.get(k, v) for k, v in self.search_options.items()}
        return build, search

    def check_search(self, search: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(search) - set(self.search_options))
        if unknown:
            raise ConfigError(f"a {self.name!r} index has no search option(s) {', '.join(unknown)} "
                              f"(known: {', '.join(self.search_options) or 'none'})")
        return {k: _check_int(k, v, self.search_minimum.get(k, 1))
                for k, v in search.items() if v is not None}

    def build(self, vectors: np.ndarray, **options: Any) -> tuple[Any, dict[str, Any]]:
        """A filled index over ``vectors`` and the build options actually used."""
        raise NotImplementedError

    def search(self, index: Any, exact: Any, queries: np.ndarray, k: int,
               search: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(scores, labels) of the top ``k`` per query; ``exact`` is the side index or None."""
        return index.search(queries, k)

    def mmap_flag(self) -> int:
        """faiss read flag that memory-maps this kind's bulk data."""
        return _faiss().IO_FLAG_MMAP_IFC  # in-place mapping of flat codes


class FlatIndex(IndexType):
    name = "flat"

    def build(self, vectors: np.ndarray, **options: Any) -> tuple[Any, dict[str, Any]]:
        index = _faiss().IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        return index, {}


class HNSWIndex(IndexType):
    name = "hnsw"
    build_options = {"M": 32, "ef_construction": 200}
    search_options = {"ef_search": 128}

    def build(self, vectors: np.ndarray, M: int = 32, ef_construction: int = 200,
              **_: Any) -> tuple[Any, dict[str, Any]]:
        faiss = _faiss()
        M = _check_int("M", M, 2)
        ef_construction = _check_int("ef_construction", ef_construction)
        index = faiss.IndexHNSWFlat(vectors.shape[1], M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.add(vectors)
        return index, {"M": M, "ef_construction": ef_construction}

    def search(self, index: Any, exact: Any, queries: np.ndarray, k: int,
               search: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        # with a candidate list shorter than k, HNSW returns fewer than k hits
        params = _faiss().SearchParametersHNSW(efSearch=max(int(search["ef_search"]), k))
        return index.search(queries, k, params=params)


class IVFPQIndex(IndexType):
    name = "ivfpq"
    build_options = {"nlist": None, "m": None, "nbits": None}
    search_options = {"nprobe": 16, "refine": 0}
    search_minimum = {"refine": 0}
    exact_vectors = False

    @staticmethod
    def default_nlist(n: int) -> int:
        # ~4 sqrt(n) lists, but at least 39 training points per list (faiss' own rule of thumb)
        return max(1, min(int(4 * math.sqrt(n)), n // _MIN_POINTS))

    @staticmethod
    def default_m(d: int) -> int:
        # about 8 dimensions per sub-quantizer, as a divisor of d
        target = max(1, d // 8)
        return max(m for m in range(1, target + 1) if d % m == 0)

    def build(self, vectors: np.ndarray, nlist: int | None = None, m: int | None = None,
              nbits: int | None = None, **_: Any) -> tuple[Any, dict[str, Any]]:
        faiss = _faiss()
        n, d = vectors.shape
        nlist = _check_int("nlist", nlist) if nlist is not None else self.default_nlist(n)
        m = _check_int("m", m) if m is not None else self.default_m(d)
        # a code book of 2**nbits centroids needs at least that many training vectors
        nbits = _check_int("nbits", nbits) if nbits is not None else max(1, min(8, int(math.log2(n))))
        if d % m:
            raise ConfigError(f"ivfpq: m={m} sub-quantizers must divide the dimension {d}")
        if nlist > n or 2 ** nbits > n:
            raise ConfigError(f"ivfpq: {n} vectors are too few to train nlist={nlist} lists and "
                              f"2**nbits={2 ** nbits} centroids; lower them or use a flat index")
        if n < _MIN_POINTS * max(nlist, 2 ** nbits):
            warnings.warn(
                f"ivfpq: {n} training vectors for {nlist} lists and {2 ** nbits} centroids per "
                f"sub-quantizer (faiss advises >= {_MIN_POINTS} per centroid); the quantizers are "
                "under-trained, so recall may suffer: lower nlist/nbits, search with refine=, "
                "or use hnsw or flat", UserWarning, stacklevel=4)
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFPQ(quantizer, d, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
        # warned once above; stop faiss printing the same advice once per sub-quantizer
        index.cp.min_points_per_centroid = 1
        index.pq.cp.min_points_per_centroid = 1
        index.train(vectors)
        index.add(vectors)
        return index, {"nlist": nlist, "m": m, "nbits": nbits}

    def search(self, index: Any, exact: Any, queries: np.ndarray, k: int,
               search: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        faiss = _faiss()
        ivf = faiss.SearchParametersIVF(nprobe=int(search["nprobe"]))
        refine = int(search.get("refine", 0))
        if not refine:
            return index.search(queries, k, params=ivf)
        if exact is None:
            raise ConfigError("refine= needs the exact vectors, which this ivfpq index lacks")
        params = faiss.IndexRefineSearchParameters(k_factor=refine, base_index_params=ivf)
        return faiss.IndexRefine(index, exact).search(queries, k, params=params)

    def mmap_flag(self) -> int:
        return _faiss().IO_FLAG_MMAP  # inverted lists map with this flag, not the _IFC one


#: index kind -> implementation (one line per kind)
INDEX_TYPES: dict[str, IndexType] = {t.name: t for t in (FlatIndex(), HNSWIndex(), IVFPQIndex())}


def index_type(name: str) -> IndexType:
    if name not in INDEX_TYPES:
        raise ConfigError(f"unknown dense index type {name!r} (choose {', '.join(INDEX_TYPES)})")
    return INDEX_TYPES[name]


def exact_index(vectors: np.ndarray) -> Any:
    """A flat index holding ``vectors`` (the exact side store of a lossy index)."""
    return FlatIndex().build(vectors)[0]


class _KeepAlive:
    """Array interface of faiss-owned memory that also holds the owning index,
    so the numpy view never outlives the vectors it points into."""

    def __init__(self, owner: Any, raw: np.ndarray):
        self.owner = owner
        self.__array_interface__ = raw.__array_interface__


def stored_vectors(index: Any) -> np.ndarray | None:
    """The exact vectors a flat or HNSW index holds, as a zero-copy (n, d) view."""
    faiss = _faiss()
    flat = faiss.downcast_index(index)
    if isinstance(flat, faiss.IndexHNSW):
        flat = faiss.downcast_index(flat.storage)
    if not isinstance(flat, faiss.IndexFlat):
        return None
    n, d = flat.ntotal, flat.d
    if n == 0:
        return np.empty((0, d), dtype=np.float32)
    raw = faiss.rev_swig_ptr(flat.get_xb(), n * d).reshape(n, d)
    view = np.asarray(_KeepAlive(index, raw))
    view.flags.writeable = False
    return view


def write_index(index: Any, path: str) -> None:
    _faiss().write_index(index, path)


def read_index(path: str, kind: IndexType, mmap: bool = False) -> Any:
    return _faiss().read_index(path, kind.mmap_flag() if mmap else 0)
