"""boto3's side of the client scenario (test/helpers/client-scenario.ts).

Run by test/clients/boto3.test.ts as `python3 boto3_scenario.py ENDPOINT ACCESS_KEY SECRET_KEY PART_SIZE`.
Each stdin line is a JSON request {"op": "<ScenarioClient method>", "args": [...]}; each
answer is one JSON line on stdout: {"ok": result} or {"error": {"code", "status", "message"}}.
"""
import base64
import json
import os
import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError


class Scenario:
    def __init__(self, endpoint, access_key, secret_key, part_size):
        self.s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
        )
        self.transfer = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size)

    def createBucket(self, bucket):
        self.s3.create_bucket(Bucket=bucket)

    def listBuckets(self):
        return [b["Name"] for b in self.s3.list_buckets()["Buckets"]]

    def putFile(self, bucket, key, file, meta=None):
        extra = {"ContentType": meta["contentType"], "Metadata": meta["metadata"]} if meta else {}
        with open(file, "rb") as body:
            self.s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)

    def putDir(self, bucket, prefix, directory):
        for root, _, files in os.walk(directory):
            for name in files:
                path = os.path.join(root, name)
                self.s3.upload_file(path, bucket, prefix + os.path.relpath(path, directory), Config=self.transfer)

    def getDir(self, bucket, prefix, directory):
        for key in self.list(bucket, prefix)["keys"]:
            dest = os.path.join(directory, key[len(prefix):])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            self.s3.download_file(bucket, key, dest, Config=self.transfer)

    def head(self, bucket, key):
        head = self.s3.head_object(Bucket=bucket, Key=key)
        return {"size": head["ContentLength"], "etag": head["ETag"].strip('"'), "contentType": head["ContentType"], "metadata": head["Metadata"]}

    def getFile(self, bucket, key, dest):
        self.s3.download_file(bucket, key, dest, Config=self.transfer)

    def getRange(self, bucket, key, byte_range):
        spec = "bytes=%d-%s" % (byte_range["start"], byte_range.get("end", ""))
        return base64.b64encode(self.s3.get_object(Bucket=bucket, Key=key, Range=spec)["Body"].read()).decode()

    def uploadMultipart(self, bucket, key, file):
        self.s3.upload_file(file, bucket, key, Config=self.transfer)

    def list(self, bucket, prefix, delimiter=None):
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, **({"Delimiter": delimiter} if delimiter else {}))
        return {"keys": [o["Key"] for o in listed.get("Contents", [])], "prefixes": [p["Prefix"] for p in listed.get("CommonPrefixes", [])]}

    def listPaged(self, bucket, prefix, page_size):
        pages = list(self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}))
        return {"keys": [o["Key"] for page in pages for o in page.get("Contents", [])], "pages": len(pages)}

    def copy(self, bucket, source, target):
        self.s3.copy_object(Bucket=bucket, Key=target, CopySource={"Bucket": bucket, "Key": source})

    def presignGet(self, bucket, key):
        return self.s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)

    def deleteObject(self, bucket, key):
        self.s3.delete_object(Bucket=bucket, Key=key)

    def deleteObjects(self, bucket, keys):
        result = self.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
        if result.get("Errors"):
            raise RuntimeError("DeleteObjects errors: %s" % result["Errors"])

    def headStatus(self, bucket, key):
        try:
            return self.s3.head_object(Bucket=bucket, Key=key)["ResponseMetadata"]["HTTPStatusCode"]
        except ClientError as e:
            return e.response["ResponseMetadata"]["HTTPStatusCode"]

    def deleteBucket(self, bucket):
        self.s3.delete_bucket(Bucket=bucket)


def main():
    endpoint, access_key, secret_key, part_size = sys.argv[1:5]
    scenario = Scenario(endpoint, access_key, secret_key, int(part_size))
    print(json.dumps({"ok": "boto3 %s, botocore %s" % (boto3.__version__, boto3.session.botocore.__version__)}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = {"ok": getattr(scenario, request["op"])(*request["args"])}
        except ClientError as e:
            error = e.response.get("Error", {})
            reply = {"error": {"code": error.get("Code"), "status": e.response["ResponseMetadata"].get("HTTPStatusCode"), "message": str(e)}}
        except Exception as e:  # noqa: BLE001 - every failure goes back to the test
            reply = {"error": {"code": type(e).__name__, "message": str(e)}}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
