"""ConsolidateData: the new exported days merged into dataset/ (deduplicated, schema enforced)."""

from __future__ import annotations

from parking_core.pipeline_steps import consolidate
from sagemaker_adapter.steps.common import object_store, processing_args, publish


def main(argv=None) -> dict:
    args = processing_args(__doc__, argv=argv)
    info = consolidate(object_store(args.objects))
    publish(args.objects, args.out, "dataset")
    print(f"merged {info['new_days']} new day(s): {info['rows']} rows over {len(info['days'])} days", flush=True)
    return info


if __name__ == "__main__":
    main()
