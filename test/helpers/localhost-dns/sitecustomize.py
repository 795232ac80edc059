# Put on PYTHONPATH by test/helpers/localhost-dns.ts for Python clients (aws CLI, boto3):
# resolves *.localhost to 127.0.0.1 as RFC 6761 asks, for machines whose resolver doesn't
# (glibc without nss-myhostname). The request still carries Host: bucket.s3.localhost:PORT.
import socket

_getaddrinfo = socket.getaddrinfo


def _localhost_getaddrinfo(host, *args, **kwargs):
    if isinstance(host, bytes):
        host = host.decode()
    if isinstance(host, str) and (host == "localhost" or host.endswith(".localhost")):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _localhost_getaddrinfo
