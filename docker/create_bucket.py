"""Create the bucket of the deployment if it does not exist (the one-shot service
create_bucket of docker/compose.yaml; idempotent).

The bucket is the first part of ``$RISK_ASSETS_OBJECT_STORE`` (``s3://<bucket>/state``);
boto3 reads the credentials, region and endpoint from the usual AWS variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL``). The S3 service may still be starting: connection errors are retried
for ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from urllib.parse import urlsplit


def bucket_of(url: str) -> str:
    """The bucket of an ``s3://bucket/prefix`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in {"s3", "s3a"} or not parts.netloc:
        raise SystemExit(f"RISK_ASSETS_OBJECT_STORE={url!r} is not an s3://<bucket>/<prefix> URL")
    return parts.netloc


def ensure_bucket(bucket: str, *, timeout: float = 60.0) -> bool:
    """Create ``bucket`` unless it exists; True when it was created."""
    import boto3
    from botocore.exceptions import ClientError, EndpointConnectionError

    client = boto3.client("s3")
    region = client.meta.region_name
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.head_bucket(Bucket=bucket)
            return False
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket"}:
                raise
            options = {}
            if region and region != "us-east-1":  # us-east-1 refuses a location constraint
                options["CreateBucketConfiguration"] = {"LocationConstraint": region}
            client.create_bucket(Bucket=bucket, **options)
            return True
        except EndpointConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    url = os.environ.get("RISK_ASSETS_OBJECT_STORE", "")
    bucket = bucket_of(url)
    created = ensure_bucket(bucket, timeout=args.timeout)
    print(f"bucket {bucket}: {'created' if created else 'exists'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
