"""The user's data files, read and checked before ``datasets`` sees them.

``datasets`` turns a bad file into an error deep inside its builders (``DatasetGenerationError``, a pyarrow
``ArrowInvalid``, ``StopIteration``, ``Instruction "train" corresponds to no data``) or, worse, into data that trains
on the wrong thing. Every recipe that reads ``--train_file``-style flags (fine-tuning, pretraining, the tokenizer
trainer) calls :func:`check_data_file` first, so each of these is one sentence naming the flag, the file and the line:

* a file that does not exist, is empty, or holds only blank lines, a CSV header or no JSON records;
* a file that is not in its encoding (UTF-8 unless ``--encoding`` says otherwise; a UTF-8 BOM is fine);
* a CSV header repeated inside the data (files joined with ``cat``), a CSV row with more fields than the header;
* a JSON lines file with a line that is not JSON, or a column whose values change type (``1``, ``"0"``, ``"pos"``).

:func:`refuse_blank_labels`, :func:`refuse_blank_texts` and :func:`refuse_no_rows` check what the files became once
loaded (labels, texts, rows left after filtering).
"""

import codecs
import csv
import itertools
import json
import os

TABLE_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
DEFAULT_ENCODING = "utf-8"


def check_encoding_name(encoding: str, flag: str = "--encoding") -> str:
    """``encoding`` if Python knows it (``gbk``, ``gb18030``, ``big5``, ``utf-8`` ...)."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"{flag} {encoding!r} is not an encoding Python knows; try utf-8, gbk or gb18030") from None
    return encoding


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def text_encoding(encoding: str = DEFAULT_ENCODING) -> str:
    """The codec to open a user's text file with: UTF-8 files may start with a BOM, which must not become text."""
    return "utf-8-sig" if _is_utf8(encoding) else encoding


def builder_kwargs(path: str, encoding: str = DEFAULT_ENCODING) -> dict:
    """Keyword arguments of ``datasets.load_dataset`` for the CSV/TSV/JSON file ``path``.

    The csv and json builders decode other encodings themselves (``encoding=``), so a GBK file needs no converted
    copy; the argument is left out for UTF-8 so that the datasets cache of earlier runs still applies.
    """
    kwargs = {"delimiter": "\t"} if path.lower().endswith(".tsv") else {}
    if not _is_utf8(encoding) and not path.lower().endswith(".parquet"):
        kwargs["encoding"] = encoding
    return kwargs


def require_file(path: str, flag: str) -> None:
    """A missing path is named with its flag (``datasets`` would say only that no file matched a pattern)."""
    if not os.path.isfile(path):
        kind = "a folder, not a file" if os.path.isdir(path) else "no such file"
        raise FileNotFoundError(f"{flag} {path}: {kind}")


def check_data_file(path: str, flag: str, encoding: str = DEFAULT_ENCODING) -> None:
    """The checks of the module docstring, for a CSV/TSV, JSON/JSON lines or plain text file (Parquet: exists)."""
    require_file(path, flag)
    extension = os.path.splitext(path)[1].lower()
    if extension == ".parquet":
        return
    _check_decodes(path, flag, encoding)
    if extension in (".csv", ".tsv"):
        _check_csv_rows(path, flag, "\t" if extension == ".tsv" else ",", encoding)
    elif extension in (".json", ".jsonl"):
        _check_json_records(path, flag, encoding)
    else:
        with open(path, encoding=text_encoding(encoding)) as f:
            if not any(line.strip() for line in f):
                raise ValueError(f"{flag} {path} {_emptiness(path)}: give a file with text")


def _emptiness(path: str) -> str:
    return "is empty" if os.path.getsize(path) == 0 else "holds only blank lines"


def _check_decodes(path: str, flag: str, encoding: str) -> None:
    """Name the first line that is not in ``encoding``, and how to convert the file."""
    # Read in large blocks (a corpus may be gigabytes); only a file that fails is read again line by line, to name
    # the line. Incremental decoders: a character cut by a block or line boundary is no error.
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        line_number, err = _first_undecodable_line(path, encoding)
        raise ValueError(_decoding_error(path, flag, encoding, line_number, err)) from None


def _first_undecodable_line(path: str, encoding: str) -> tuple[int, UnicodeDecodeError]:
    decoder = codecs.getincrementaldecoder(encoding)()
    line_number = 0
    with open(path, "rb") as f:
        for raw in itertools.chain(f, [b""]):  # b"": the end, where a character cut short is an error too
            line_number += bool(raw)
            try:
                decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as err:
                return line_number, err
    raise AssertionError(f"{path} decodes as {encoding} line by line but not in blocks")


def _decoding_error(path: str, flag: str, encoding: str, line_number: int, err: UnicodeDecodeError) -> str:
    byte = err.object[err.start]
    where = f"line {line_number} has the byte 0x{byte:02x}, which is not valid {encoding}"
    if _is_utf8(encoding):
        stem, extension = os.path.splitext(path)
        return (
            f"{flag} {path} is not UTF-8 text: {where}; convert it (GBK, common for Chinese text: "
            f"iconv -f GBK -t UTF-8 {path} > {stem}.utf8{extension}) or name its encoding with --encoding gbk"
        )
    return f"{flag} {path} is not {encoding} text: {where}; give the file's encoding with --encoding (utf-8, gb18030)"


def _check_csv_rows(path: str, flag: str, delimiter: str, encoding: str) -> None:
    """A header and at least one data row. A header line inside the data (files joined with ``cat``) would become an
    example labelled ``label``; a row with more fields than the header (a text holding an unquoted comma) fails in
    pandas, or, on the first data row, silently makes the first column an index and shifts the others."""
    with open(path, encoding=text_encoding(encoding), newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next((row for row in reader if row), None)
        if header is None:
            raise ValueError(f"{flag} {path} {_emptiness(path)}: give a header line and data rows")
        header = [name.strip() for name in header]
        data_rows = 0
        for row in reader:
            if not row:
                continue  # blank lines are skipped by the csv builder too
            if [value.strip() for value in row] == header:
                raise ValueError(
                    f"{flag} {path}: line {reader.line_num} repeats the header {header}; remove it, or it becomes an "
                    "example of a class named after the label column"
                )
            if len(row) > len(header):
                raise ValueError(
                    f"{flag} {path}: line {reader.line_num} has {len(row)} fields but the header {header} has "
                    f"{len(header)}; put a text that holds the delimiter {delimiter!r} in double quotes"
                )
            data_rows += 1
    if data_rows == 0:
        raise ValueError(f"{flag} {path} holds only its header line {header} and no data rows")


def _json_kind(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"  # pyarrow reads integers and floats together as floats
    return {str: "string", list: "list", dict: "object"}.get(type(value), type(value).__name__)


def _json_records(path: str, flag: str, encoding: str):
    """``(where, record)`` of each record of a JSON lines file or of one JSON document (a list of records or of texts,
    or one record); None for a document of another shape, left to the json builder."""
    with open(path, encoding=text_encoding(encoding)) as f:
        first_line = next((line for line in f if line.strip()), "")
    if first_line.lstrip().startswith("[") or not _parses(first_line):  # one JSON document (pretty-printed, say)
        with open(path, encoding=text_encoding(encoding)) as f:
            try:
                document = json.load(f)
            except json.JSONDecodeError as err:
                if not first_line.lstrip().startswith("["):
                    return _json_lines_records(path, flag, encoding)  # names the broken line
                raise ValueError(f"{flag} {path} is not valid JSON: line {err.lineno}: {err.msg}") from None
        if isinstance(document, dict):  # pyarrow reads one object across lines as one record
            document = [document]
        if not isinstance(document, list):
            return None
        # A list of texts is read as a column "text".
        return ((f"record {n}", {"text": r} if isinstance(r, str) else r) for n, r in enumerate(document, 1))
    return _json_lines_records(path, flag, encoding)


def _parses(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return False
    return True


def _json_lines_records(path: str, flag: str, encoding: str):
    number = 0
    with open(path, encoding=text_encoding(encoding)) as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            number += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{flag} {path}: line {line_number} is not a JSON record ({err.msg}); a JSON lines file holds one "
                    "object per line"
                ) from None
            yield f"record {number} (line {line_number})", record


def _check_json_records(path: str, flag: str, encoding: str) -> None:
    """At least one record, each an object, and each column of one type: pyarrow fails on ``1`` beside ``"pos"``."""
    records = _json_records(path, flag, encoding)
    if records is None:
        return
    first_of_column: dict[str, tuple[str, str, object]] = {}  # column -> (kind, where, value) of its first value
    count = 0
    for where, record in records:
        count += 1
        if not isinstance(record, dict):
            raise ValueError(f"{flag} {path}: {where} is a {_json_kind(record)}, not an object of named columns")
        for column, value in record.items():
            kind = _json_kind(value)
            if kind is None:
                continue
            first = first_of_column.setdefault(column, (kind, where, value))
            if first[0] != kind:
                raise ValueError(
                    f"{flag} {path}: {where} has {column!r} {value!r} (a {kind}) but {first[1]} has {first[2]!r} "
                    f"(a {first[0]}); write every {column!r} the same way, e.g. all numbers or all strings"
                )
    if count == 0:
        emptiness = "is empty" if os.path.getsize(path) == 0 else "holds no JSON records"
        raise ValueError(f"{flag} {path} {emptiness}: give one JSON object per line")


# ---------------------------------------------------------------------------------------------- once loaded
def _row_kind(path: str) -> str:
    return "data row" if path.lower().endswith((".csv", ".tsv")) else "record"


def refuse_blank_labels(dataset, path: str, flag: str, label_column: str | None, multi_label: bool) -> None:
    """A blank single label turns a column of integers into floats (``1.0`` is then not the class ``1``): name it."""
    from datasets import Value

    if label_column not in dataset.column_names or multi_label:
        return  # no labels here, or multi-label, where an empty label string means no label
    if not isinstance(dataset.features[label_column], Value):
        return
    for index, value in enumerate(dataset[label_column]):
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError(
                f"{flag} {path}: {_row_kind(path)} {index + 1} has a blank {label_column!r}; give every example a "
                "label (a test file without labels may leave the column out)"
            )


def refuse_blank_texts(dataset, path: str, flag: str, text_columns: list[str]) -> None:
    """A file whose every text is blank leaves nothing to learn from (nor to score)."""
    if len(dataset) == 0:
        return
    for row in dataset.select_columns(text_columns).iter(batch_size=1000):
        if any(str(text).strip() for column in text_columns for text in row[column] if text is not None):
            return
    raise ValueError(
        f"{flag} {path}: the text column(s) {text_columns} are blank in all {len(dataset)} {_row_kind(path)}s; "
        "fill them in, or name the right ones with --text_column_names"
    )


def refuse_no_rows(count: int, origin: str, what: str, reason: str) -> None:
    """``origin`` (flag and file) left no ``what`` after filtering; ``reason`` says what was filtered out and why."""
    if count == 0:
        raise ValueError(f"{origin} gives no {what}: {reason}")
