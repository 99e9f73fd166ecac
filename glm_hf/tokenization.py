"""Train a Chinese WordPiece tokenizer and save it as a transformers ``BertTokenizer`` folder.

``glm-hf train-tokenizer --dataset_name embedded --vocab_size 8000 --output_dir TOK`` (or ``--train_file corpus.txt``)

The pipeline is BERT's: clean text, put spaces around every CJK character (so each Chinese character is a word of its
own and never merges with its neighbours), split on whitespace and punctuation, then WordPiece with ``##``
continuation pieces, plus the BERT special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (ids 0-4).

One thing differs from the ``tokenizers`` defaults: the alphabet. ``WordPieceTrainer`` keeps only the 1,000 most
frequent characters by default (``limit_alphabet=1000``), and every other character becomes ``[UNK]`` -- fine for
English, a disaster for Chinese, where the characters *are* the vocabulary. Here the alphabet may take almost the
whole vocabulary (see ``--limit_alphabet``).

A share of the documents (``--validation_split_percentage``) is held out from training; the UNK rate on them is
printed and saved in ``tokenizer_training.json`` next to the tokenizer files. The folder loads with
``AutoTokenizer.from_pretrained(TOK)``.
"""

import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field

from transformers import BertTokenizer, HfArgumentParser

from .corpora import CorpusArguments, corpus_stats, iter_texts, load_documents

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
STATS_FILE = "tokenizer_training.json"


@dataclass
class TokenizerTrainingArguments(CorpusArguments):
    """Where to write the tokenizer, the corpus to train it on (the flags and checks of
    :class:`~glm_hf.corpora.CorpusArguments`), and the WordPiece settings."""

    output_dir: str = field(metadata={"help": "Folder to write the tokenizer to (a transformers BertTokenizer)."})
    vocab_size: int = field(default=8000, metadata={"help": "Vocabulary size, special tokens included."})
    min_frequency: int = field(default=2, metadata={"help": "Minimum count of a pair to be merged into a piece."})
    limit_alphabet: int | None = field(
        default=None,
        metadata={
            "help": "Most characters kept in the alphabet (rarer ones become [UNK]). Default: vocab_size minus the "
            "special tokens minus a 10%% reserve for multi-character pieces."
        },
    )
    lowercase: bool = field(default=True, metadata={"help": "Lowercase (and strip accents), like bert-base-chinese."})
    validation_split_percentage: float = field(
        default=5, metadata={"help": "Percent of the documents held out to measure the UNK rate (not trained on)."}
    )
    max_train_documents: int | None = field(
        default=None, metadata={"help": "Train on at most this many documents (quick runs)."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of the held-out document split."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace an existing non-empty output_dir."})

    def __post_init__(self):
        super().__post_init__()
        if self.vocab_size < len(SPECIAL_TOKENS) + 1:
            raise ValueError(f"vocab_size must be > {len(SPECIAL_TOKENS)} (the special tokens), got {self.vocab_size}")
        if self.min_frequency < 1:
            raise ValueError(f"min_frequency must be >= 1, got {self.min_frequency}")
        if self.limit_alphabet is not None and self.limit_alphabet < 1:
            raise ValueError(f"limit_alphabet must be a positive integer, got {self.limit_alphabet}")
        if not 0 <= self.validation_split_percentage < 100:
            raise ValueError(
                f"validation_split_percentage must be in [0, 100), got {self.validation_split_percentage}"
            )

    @property
    def alphabet_limit(self) -> int:
        if self.limit_alphabet is not None:
            return self.limit_alphabet
        return max(1, self.vocab_size - len(SPECIAL_TOKENS) - self.vocab_size // 10)


def build_wordpiece_trainer_pipeline(lowercase: bool = True):
    """An untrained ``tokenizers.Tokenizer`` with BERT's normalizer, pre-tokenizer and decoder.

    The [CLS]/[SEP] template comes from ``BertTokenizer`` once the trained vocabulary is wrapped in one
    (:func:`to_bert_tokenizer`).
    """
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece

    tokenizer = Tokenizer(WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer


def train_wordpiece(texts, *, vocab_size: int, min_frequency: int, limit_alphabet: int, lowercase: bool, length=None):
    """Train a WordPiece model on an iterator of texts; returns the ``tokenizers.Tokenizer``."""
    from tokenizers.trainers import WordPieceTrainer

    tokenizer = build_wordpiece_trainer_pipeline(lowercase)
    trainer = WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        limit_alphabet=limit_alphabet,
        continuing_subword_prefix="##",
        show_progress=True,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=length)
    return tokenizer


def to_bert_tokenizer(trained, folder: str, lowercase: bool) -> BertTokenizer:
    """Write ``vocab.txt`` in id order and wrap it in a transformers ``BertTokenizer`` (same pipeline as trained)."""
    vocab = trained.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    vocab_file = os.path.join(folder, "vocab.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    # v5: the vocabulary goes in as ``vocab=``; ``vocab_file=`` would be silently ignored.
    return BertTokenizer(
        vocab=vocab_file, do_lower_case=lowercase, tokenize_chinese_chars=True, strip_accents=None, model_max_length=512
    )


def unk_rate(tokenizer, texts: list[str], batch_size: int = 1000) -> dict:
    """Share of ``[UNK]`` among the tokens of ``texts`` (special tokens not counted)."""
    unk_id, total, unknown = tokenizer.unk_token_id, 0, 0
    for start in range(0, len(texts), batch_size):
        encoded = tokenizer(texts[start : start + batch_size], add_special_tokens=False)["input_ids"]
        for ids in encoded:
            total += len(ids)
            unknown += sum(1 for i in ids if i == unk_id)
    return {"unk_rate": unknown / total if total else 0.0, "unk_tokens": unknown, "tokens": total}


def _loaded_corpus(args: TokenizerTrainingArguments):
    """The training texts, their statistics and the held-out documents (or ``None``), the corpus loaded in full."""
    documents = load_documents(
        dataset_name=args.dataset_name,
        dataset_config_name=args.dataset_config_name,
        train_file=args.train_file,
        text_column_name=args.text_column_name,
        document_separator=args.document_separator,
        validation_split_percentage=args.validation_split_percentage,
        include_msra=args.include_msra,
        seed=args.seed,
        encoding=args.encoding,
    )
    train_documents = documents["train"]
    if args.max_train_documents is not None:
        train_documents = train_documents.select(range(min(args.max_train_documents, len(train_documents))))
    return iter_texts(train_documents), corpus_stats(train_documents), documents.get("validation")


def _streamed_corpus(args: TokenizerTrainingArguments):
    """``--streaming``: the training texts as they are read (the statistics are counted on the way, complete once
    they have been read) and the corpus's first --streaming_eval_documents documents, held out."""
    from .streaming import hold_out_documents, stream_documents

    held_out, documents = hold_out_documents(stream_documents(args), args.streaming_eval_documents)
    if args.max_train_documents is not None:
        documents = documents.take(args.max_train_documents)
    counts = {"streamed": True, "documents": 0, "sentences": 0, "characters": 0}

    def texts():
        for document in documents:
            counts["documents"] += 1
            counts["sentences"] += len(document["sentences"])
            counts["characters"] += sum(len(sentence) for sentence in document["sentences"])
            yield from document["sentences"]

    return texts(), counts, held_out


def train_tokenizer(args: TokenizerTrainingArguments) -> tuple[BertTokenizer, dict]:
    """Train on the corpus named by ``args``, save to ``args.output_dir``; returns the tokenizer and its stats."""
    output_dir = os.path.abspath(args.output_dir)
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not args.overwrite_output_dir:
        raise FileExistsError(f"output_dir {output_dir} exists and is not empty; pass --overwrite_output_dir")

    texts, train_stats, held_out = (_streamed_corpus if args.streaming else _loaded_corpus)(args)
    logger.info("Training WordPiece (vocab_size=%d) on %s", args.vocab_size, train_stats)
    trained = train_wordpiece(
        texts,
        vocab_size=args.vocab_size,
        min_frequency=args.min_frequency,
        limit_alphabet=args.alphabet_limit,
        lowercase=args.lowercase,
        length=None if args.streaming else train_stats["sentences"],
    )
    if args.streaming:
        logger.info("Trained on %s", train_stats)

    parent = os.path.dirname(output_dir) or "."
    os.makedirs(parent, exist_ok=True)
    # Written next to the destination and renamed at the end: a crash never leaves a half-written tokenizer.
    staging = tempfile.mkdtemp(prefix=".tokenizer-", dir=parent)
    try:
        tokenizer = to_bert_tokenizer(trained, staging, args.lowercase)
        tokenizer.save_pretrained(staging)

        stats = {
            "vocab_size": len(tokenizer),
            "requested_vocab_size": args.vocab_size,
            "limit_alphabet": args.alphabet_limit,
            "min_frequency": args.min_frequency,
            "lowercase": args.lowercase,
            "train_corpus": train_stats,
            "arguments": asdict(args),
        }
        if held_out is not None:
            stats["held_out"] = {"documents": len(held_out), **unk_rate(tokenizer, list(iter_texts(held_out)))}
        with open(os.path.join(staging, STATS_FILE), "w", encoding="utf-8") as f:
            json.dump(stats, f, ensure_ascii=False, indent=2)

        if os.path.isdir(output_dir):
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BertTokenizer.from_pretrained(output_dir), stats


def main(argv: list[str] | None = None) -> int:
    parser = HfArgumentParser(TokenizerTrainingArguments)
    parser.prog = "glm-hf train-tokenizer"
    argv = sys.argv[1:] if argv is None else list(argv)
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)

    tokenizer, stats = train_tokenizer(args)
    print(f"Saved a {stats['vocab_size']}-token WordPiece tokenizer to {os.path.abspath(args.output_dir)}")
    if "held_out" in stats:
        held_out = stats["held_out"]
        print(
            f"UNK rate on held-out text ({held_out['documents']} documents): {held_out['unk_rate']:.4%} "
            f"({held_out['unk_tokens']} of {held_out['tokens']} tokens)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
