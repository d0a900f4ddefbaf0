"""Tests for gotd.data: reading, validation, chunking, packing, de-duplication, writing."""
from __future__ import annotations

import hashlib
import json
import random
import re

import pandas as pd
import pytest

from gotd.data import (
    chunk_documents,
    deduplicate,
    pack_targets,
    read_texts,
    texts_fingerprint,
    write_texts,
)
from gotd.errors import GotdInputError


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["a", "007", "c"],
        "text": ["first doc", "NA", "third, with \"quotes\"\nand a newline / slash é"],
        "domain": ["news", "web", "news"],
        "score": [1, 2, 3],
    })


def _write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# Formats


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".csv"])
def test_write_then_read_round_trips(tmp_path, suffix):
    df = _frame()
    path = write_texts(df, tmp_path / f"corpus{suffix}")
    back = read_texts(path)
    assert back["id"].tolist() == ["a", "007", "c"]  # the "id" column is used; "007" stays a string
    assert back["text"].tolist() == df["text"].tolist()  # "NA" stays a string, not a missing value
    assert back["domain"].tolist() == ["news", "web", "news"]
    assert back["score"].tolist() == [1, 2, 3]
    assert list(back.columns) == ["id", "text", "domain", "score"]
    assert [p.name for p in tmp_path.iterdir()] == [f"corpus{suffix}"]  # no temp file left behind


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_list_columns_survive_jsonl_and_parquet(tmp_path, suffix):
    packed = pack_targets(["one", "two", "three"], chunk_chars=8)
    back = read_texts(write_texts(packed, tmp_path / f"packed{suffix}"))
    assert back["id"].tolist() == packed["id"].tolist()
    assert back["source_ids"].tolist() == [["texts:0", "texts:1"], ["texts:2"]]
    assert all(isinstance(v, list) for v in back["source_ids"])


def test_csv_refuses_list_columns(tmp_path):
    packed = pack_targets(["one", "two"], chunk_chars=100)
    with pytest.raises(GotdInputError, match=r"source_ids.*\.jsonl or \.parquet"):
        write_texts(packed, tmp_path / "packed.csv")
    assert not list(tmp_path.iterdir())


def test_write_unknown_suffix(tmp_path):
    with pytest.raises(GotdInputError, match=r"cannot write '\.xlsx'.*\.jsonl, \.parquet, \.csv"):
        write_texts(_frame(), tmp_path / "x.xlsx")


def test_failed_write_keeps_the_old_file(tmp_path):
    path = write_texts(_frame(), tmp_path / "c.parquet")
    before = path.read_bytes()
    bad = pd.DataFrame({"id": ["x", "y"], "text": ["t", "u"], "mixed": [object(), 1]})
    with pytest.raises(Exception):
        write_texts(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.parquet"]


def test_json_array_tsv_and_ids_from_rows(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([{"body": "x y"}, {"body": "z"}]), encoding="utf-8")
    df = read_texts(tmp_path / "a.json", text_field="body")
    assert df["id"].tolist() == ["a.json:1", "a.json:2"]
    assert df["text"].tolist() == ["x y", "z"]

    (tmp_path / "b.tsv").write_text("text\tlabel\nhello, world\t1\nbye\t0\n", encoding="utf-8")
    df = read_texts(tmp_path / "b.tsv")
    assert df["text"].tolist() == ["hello, world", "bye"]
    assert df["label"].tolist() == [1, 0]
    assert df["id"].tolist() == ["b.tsv:1", "b.tsv:2"]


def test_jsonl_ids_are_line_numbers_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": "b"}\n', encoding="utf-8")
    assert read_texts(path)["id"].tolist() == ["p.jsonl:1", "p.jsonl:3"]


def test_txt_file_is_one_document_per_line(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("first line\nsecond line\n", encoding="utf-8")
    df = read_texts(path)
    assert df["text"].tolist() == ["first line", "second line"]
    assert df["id"].tolist() == ["lines.txt:1", "lines.txt:2"]


def test_txt_folder_is_one_document_per_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("bee\nline two\n", encoding="utf-8")
    (tmp_path / "sub" / "a.txt").write_text("ay", encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored", encoding="utf-8")
    df = read_texts(tmp_path)
    assert df["id"].tolist() == ["b.txt", "sub/a.txt"]
    assert df["text"].tolist() == ["bee\nline two\n", "ay"]


def test_in_memory_inputs():
    df = read_texts(["x", "y"])
    assert df["id"].tolist() == ["texts:0", "texts:1"]
    frame = pd.DataFrame({"content": ["p", "q"], "key": [10, 11], "lang": ["en", "de"]})
    df = read_texts(frame, text_field="content", id_field="key")
    assert df.to_dict(orient="list") == {"id": ["10", "11"], "text": ["p", "q"], "lang": ["en", "de"]}
    assert read_texts(frame, text_field="content", keep_fields=[]).columns.tolist() == ["id", "text"]


def test_hf_dataset_input():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": ["a b", "c"], "tags": [["x"], ["y", "z"]], "n": [1, 2]})
    df = read_texts(ds)
    assert df["id"].tolist() == ["Dataset:0", "Dataset:1"]
    assert df["text"].tolist() == ["a b", "c"]
    assert df["tags"].tolist() == [["x"], ["y", "z"]]
    with pytest.raises(GotdInputError, match=r"DatasetDict.*\['train'\].*dataset\['train'\]"):
        read_texts(datasets.DatasetDict({"train": ds}))


# ----------------------------------------------------------------------------------------------
# Validation messages: each names the file, the row and a fix


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(GotdInputError, match=r"nope\.jsonl: no such file.*check the path"):
        read_texts(tmp_path / "nope.jsonl")
    (tmp_path / "d.xml").write_text("<a/>", encoding="utf-8")
    with pytest.raises(GotdInputError, match=r"d\.xml: unknown file type '\.xml'; supported: \.jsonl"):
        read_texts(tmp_path / "d.xml")
    with pytest.raises(GotdInputError, match="cannot read texts from a int"):
        read_texts(42)


def test_missing_text_field_lists_the_fields(tmp_path):
    path = tmp_path / "p.jsonl"
    _write_jsonl(path, [{"body": "x", "url": "u"}])
    with pytest.raises(GotdInputError, match=r"p\.jsonl: field 'text' not found; available fields: "
                                             r"body, url; pass text_field="):
        read_texts(path)
    with pytest.raises(GotdInputError, match=r"field 'doc' not found.*id_field"):
        read_texts(path, text_field="body", id_field="doc")
    with pytest.raises(GotdInputError, match=r"field 'lang' not found.*keep_fields"):
        read_texts(path, text_field="body", keep_fields=["lang"])


def test_non_string_text_names_row_and_type(tmp_path):
    path = tmp_path / "p.jsonl"
    _write_jsonl(path, [{"text": "ok"}, {"text": "fine"}, {"text": 17}, {"text": ["a"]}])
    with pytest.raises(GotdInputError, match=r"p\.jsonl line 3: field 'text' is a int \(17\), "
                                             r"expected a string \(2 such rows in all\)"):
        read_texts(path)


def test_empty_texts_raise_or_are_dropped_and_counted(tmp_path):
    path = tmp_path / "p.jsonl"
    _write_jsonl(path, [{"text": "ok"}, {"text": "  \n"}, {"text": None}, {"text": "yes"}])
    with pytest.raises(GotdInputError, match=r"p\.jsonl line 2: field 'text' is empty.*"
                                             r"\(2 such rows in all\).*drop_empty=True"):
        read_texts(path)
    df = read_texts(path, drop_empty=True)
    assert df["text"].tolist() == ["ok", "yes"]
    assert df["id"].tolist() == ["p.jsonl:1", "p.jsonl:4"]
    assert df.attrs["dropped_empty"] == 2


def test_empty_results(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(GotdInputError, match=r"no texts in e\.jsonl"):
        read_texts(tmp_path / "e.jsonl")
    (tmp_path / "blank.txt").write_text(" \n\n", encoding="utf-8")
    with pytest.raises(GotdInputError, match=r"no texts in blank\.txt: all 2 rows were empty"):
        read_texts(tmp_path / "blank.txt", drop_empty=True)
    (tmp_path / "e.csv").write_text("", encoding="utf-8")
    with pytest.raises(GotdInputError, match=r"no texts in e\.csv"):
        read_texts(tmp_path / "e.csv")
    (tmp_path / "folder").mkdir()
    with pytest.raises(GotdInputError, match=r"no texts in .*folder.*add \.txt files"):
        read_texts(tmp_path / "folder")


def test_malformed_json_names_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b",}\n', encoding="utf-8")
    with pytest.raises(GotdInputError, match=r"p\.jsonl line 2: invalid JSON.*one JSON object"):
        read_texts(path)
    path.write_text('{"text": "a"}\n["b"]\n', encoding="utf-8")
    with pytest.raises(GotdInputError, match=r"p\.jsonl line 2: expected a JSON object.*got list"):
        read_texts(path)
    arr = tmp_path / "a.json"
    arr.write_text('[\n{"text": "a"},\n{"text": }\n]', encoding="utf-8")
    with pytest.raises(GotdInputError, match=r"a\.json line 3: invalid JSON"):
        read_texts(arr)


def test_duplicate_and_missing_ids(tmp_path):
    path = tmp_path / "p.jsonl"
    _write_jsonl(path, [{"k": "x", "text": "a"}, {"k": "y", "text": "b"}, {"k": "x", "text": "c"}])
    with pytest.raises(GotdInputError, match=r"p\.jsonl: id 'x' in field 'k' appears twice "
                                             r"\(line 1 and line 3\); make the ids unique"):
        read_texts(path, id_field="k")
    _write_jsonl(path, [{"id": "x", "text": "a"}, {"id": None, "text": "b"}])
    with pytest.raises(GotdInputError, match=r"p\.jsonl line 2: id field 'id' is missing.*rename "
                                             r"the 'id' column"):
        read_texts(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(GotdInputError, match=r"latin\.txt: not UTF-8.*re-encode"):
        read_texts(path)


# ----------------------------------------------------------------------------------------------
# Chunking


def _check_chunks(doc: str, chunks: pd.DataFrame, chunk_chars: int) -> None:
    """Offsets reproduce each chunk and only whitespace lies between or around chunks."""
    previous_end = 0
    for row in chunks.itertuples():
        assert doc[row.char_start:row.char_end] == row.text
        assert 1 <= len(row.text) <= chunk_chars
        assert doc[previous_end:row.char_start].strip() == ""
        previous_end = row.char_end
    assert doc[previous_end:].strip() == ""
    assert re.sub(r"\s", "", "".join(chunks["text"])) == re.sub(r"\s", "", doc)


def test_chunks_cover_the_document_and_cut_at_whitespace():
    words = "alpha beta gamma delta epsilon " * 40
    chunks = chunk_documents([words], chunk_chars=50)
    _check_chunks(words, chunks, 50)
    vocabulary = {"alpha", "beta", "gamma", "delta", "epsilon"}
    for text in chunks["text"]:
        assert set(text.split()) <= vocabulary  # no word split across chunks
    assert chunks["chunk_index"].tolist() == list(range(len(chunks)))
    assert chunks["id"].iloc[1] == "texts:0#1"


def test_chunks_hard_cut_without_whitespace():
    doc = "x" * 25
    chunks = chunk_documents([doc], chunk_chars=10)
    assert chunks["text"].tolist() == ["x" * 10, "x" * 10, "x" * 5]
    assert list(zip(chunks["char_start"], chunks["char_end"])) == [(0, 10), (10, 20), (20, 25)]


def test_whitespace_only_in_first_half_is_not_used():
    doc = "ab " + "c" * 20  # the only space is in the first half of a 10-character window
    chunks = chunk_documents([doc], chunk_chars=10)
    assert chunks["text"].tolist()[0] == "ab ccccccc"


def test_random_documents_keep_every_character():
    rng = random.Random(0)
    alphabet = "abcdefgh  \n\t"
    for _ in range(200):
        doc = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300)))
        if not doc.strip():
            continue
        chunk_chars = rng.randint(1, 40)
        _check_chunks(doc, chunk_documents([doc], chunk_chars=chunk_chars), chunk_chars)


def test_short_chunks_are_dropped_and_counted_and_extras_carried():
    docs = pd.DataFrame({"id": ["d1", "d2"], "text": ["x" * 23, "tiny"], "domain": ["a", "b"]})
    chunks = chunk_documents(docs, chunk_chars=10, min_chunk_chars=5)
    assert chunks["id"].tolist() == ["d1#0", "d1#1"]
    assert chunks.attrs["dropped_short_chunks"] == 2  # "xxx" and "tiny"
    assert chunks["domain"].tolist() == ["a", "a"]
    assert chunks.columns.tolist()[:6] == ["id", "doc_id", "chunk_index", "char_start", "char_end",
                                           "text"]


def test_chunk_argument_validation():
    with pytest.raises(GotdInputError, match="chunk_chars must be an integer >= 1"):
        chunk_documents(["abc"], chunk_chars=0)
    with pytest.raises(GotdInputError, match="lower min_chunk_chars"):
        chunk_documents(["abc"], chunk_chars=5, min_chunk_chars=6)
    with pytest.raises(GotdInputError, match="all 1 chunks are shorter"):
        chunk_documents(["abc"], chunk_chars=5, min_chunk_chars=4)


# ----------------------------------------------------------------------------------------------
# Packing


def test_pack_targets_respects_the_limit_and_keeps_every_sample():
    rng = random.Random(1)
    samples = [" ".join(["w"] * rng.randint(1, 60)) for _ in range(100)]
    ids = [f"texts:{i}" for i in range(len(samples))]
    packed = pack_targets(samples, chunk_chars=100)
    assert (packed["text"].str.len() <= 100).all()
    flat = [sid for group in packed["source_ids"] for sid in group]
    assert sorted(set(flat), key=flat.index) == ids  # every sample, in order
    for text, group in zip(packed["text"], packed["source_ids"]):
        if len(group) > 1 or len(samples[int(group[0].split(":")[1])]) <= 100:
            assert text == "\n".join(samples[int(s.split(":")[1])] for s in group)
    # greedy: the sample after a pack would not have fitted (pieces of a split sample stand alone)
    def length(sid: str) -> int:
        return len(samples[int(sid.split(":")[1])])

    for k in range(len(packed) - 1):
        group, nxt = packed["source_ids"].iloc[k], packed["source_ids"].iloc[k + 1][0]
        if length(group[0]) <= 100 and length(nxt) <= 100:
            assert len(packed["text"].iloc[k]) + 1 + length(nxt) > 100
    assert any(length(sid) > 100 for sid in ids)  # the split path is exercised too


def test_pack_targets_splits_long_samples():
    packed = pack_targets(pd.DataFrame({"id": ["s", "long", "t"],
                                        "text": ["ab", "y" * 25, "cd"]}), chunk_chars=10)
    assert packed["text"].tolist() == ["ab", "y" * 10, "y" * 10, "y" * 5, "cd"]
    assert packed["source_ids"].tolist() == [["s"], ["long"], ["long"], ["long"], ["t"]]
    assert packed["id"].tolist() == [f"target#{k}" for k in range(5)]


# ----------------------------------------------------------------------------------------------
# De-duplication and fingerprints


def test_deduplicate_counts_and_normalises():
    df = pd.DataFrame({"id": list("abcde"), "text": ["Hello  world", "hello world", "Hello world\n",
                                                      "other", "Hello world"]})
    exact = deduplicate(df, normalize_whitespace=False)
    assert exact["id"].tolist() == ["a", "b", "c", "d", "e"]
    assert exact.attrs["duplicates_removed"] == 0
    spaces = deduplicate(df)
    assert spaces["id"].tolist() == ["a", "b", "d"]
    assert spaces.attrs["duplicates_removed"] == 2
    folded = deduplicate(df, casefold=True)
    assert folded["id"].tolist() == ["a", "d"]
    assert folded.attrs["duplicates_removed"] == 3
    with pytest.raises(GotdInputError, match="field 'body' not found"):
        deduplicate(df, field="body")


def test_texts_fingerprint():
    assert texts_fingerprint(["ab", "c"]) != texts_fingerprint(["a", "bc"])
    assert texts_fingerprint(["a", "b"]) != texts_fingerprint(["b", "a"])
    expected = hashlib.sha256(b"\x00" * 7 + b"\x02" + "é".encode()).hexdigest()
    assert texts_fingerprint(["é"]) == expected
    assert texts_fingerprint(pd.Series(["x", "y"])) == texts_fingerprint(["x", "y"])
    with pytest.raises(GotdInputError, match=r"texts_fingerprint: texts\[1\] is int"):
        texts_fingerprint(["x", 3])


# ----------------------------------------------------------------------------------------------
# Exact duplicates are counted and reported, never dropped silently


def test_count_exact_duplicates_counts_repeats_after_the_first():
    from gotd.data import count_exact_duplicates

    assert count_exact_duplicates([]) == 0
    assert count_exact_duplicates(["a", "b", "c"]) == 0
    # "a" three times (2 repeats), "b" twice (1); "a " and "A" are other texts
    assert count_exact_duplicates(["a", "b", "a", "a ", "A", "b", "a"]) == 3
    with pytest.raises(GotdInputError, match=r"count_exact_duplicates: texts\[1\] is NoneType"):
        count_exact_duplicates(["a", None])


def test_pool_preparation_reports_exact_duplicates(caplog):
    from gotd.stages.inputs import prepare_pool

    docs = ["the same document", "another one", "the same document", "third", "the same document"]
    with caplog.at_level("WARNING", logger="gotd.data"):
        frame = read_texts(docs)
    assert frame.attrs["exact_duplicates"] == 2 and len(frame) == 5  # kept, but counted
    assert "texts: 2 of 5 texts are exact copies of an earlier text; they are kept" in caplog.text

    caplog.clear()
    with caplog.at_level("WARNING", logger="gotd.data"):
        chunks = chunk_documents(frame, chunk_chars=8)
    assert chunks.attrs["exact_duplicates"] == chunks["text"].duplicated().sum() > 0
    assert "chunks are exact copies of an earlier chunk" in caplog.text

    pool = prepare_pool(docs, chunk_chars=None, progress=False)
    assert pool.attrs["exact_duplicates"] == 2
    assert prepare_pool(docs, chunk_chars=1000, progress=False).attrs["exact_duplicates"] == 2
    assert prepare_pool(docs, chunk_chars=1000, dedup=True, progress=False).attrs["exact_duplicates"] == 0
    assert read_texts(["x", "y"]).attrs["exact_duplicates"] == 0
    assert deduplicate(frame).attrs == {**frame.attrs, "duplicates_removed": 2, "exact_duplicates": 0}
