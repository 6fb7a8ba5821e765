"""ConsolidateData: the new exported days merged into dataset/ (deduplicated, schema enforced)."""

from __future__ import annotations

from parking_core.pipeline_steps import consolidate
from parking_core.pipeline_values import DatasetSnapshot
from sagemaker_adapter.steps.common import finish, object_store, processing_args


def main(argv=None) -> DatasetSnapshot:
    args = processing_args(__doc__, argv=argv)
    snapshot = consolidate(object_store(args.objects), args.run_id)
    finish(args, snapshot)
    print(f"merged {snapshot.new_days} new day(s): {snapshot.rows} rows over {len(snapshot.days)} days", flush=True)
    return snapshot


if __name__ == "__main__":
    main()
