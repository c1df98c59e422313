"""The on-disk embedding store shared by extract-teacher and score-quality.

A few large safetensors shards plus one index, never one file a sample: a
teacher runs once per dataset and its rows are read back by id, memory-mapped.
See docs/store.md for the files and what they guarantee.

    from xmd_cli.shards import ShardWriter, ShardReader, store_dir

    store = store_dir(workdir, "teacher", components)
    with ShardWriter(store, components, dim=512, dtype="float16") as writer:
        for ids in batches(writer.pending_ids(manifest_ids)):
            writer.add(ids, embed(ids))
    rows = ShardReader(store, expect_fingerprint=components).get(batch_ids)  # float32 [n, 512]
"""

from xmd_cli.shards.export import export
from xmd_cli.shards.fingerprint import Fingerprint, diff, store_dir
from xmd_cli.shards.index_store import merge_index
from xmd_cli.shards.reader import ShardReader
from xmd_cli.shards.verify import repair, summary, verify
from xmd_cli.shards.writer import ShardWriter

__all__ = ["Fingerprint", "ShardReader", "ShardWriter", "diff", "export", "merge_index",
           "repair", "store_dir", "summary", "verify"]
