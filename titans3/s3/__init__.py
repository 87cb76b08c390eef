"""The S3 front: SigV4 authentication, aws-chunked payloads, checksums, the S3 app."""
