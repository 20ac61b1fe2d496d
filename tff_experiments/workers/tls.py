"""Mutual TLS between a run's driver and its TFF executor services.

``MutualTls(ca, cert, key)`` names three PEM files: the certificate authority that signed every
party's certificate, and this party's certificate chain and private key. Both ends use it: the
driver builds its gRPC channels with ``channel_credentials()``, the worker's TLS front
(``python -m tff_experiments.workers``) its server context with
``server_context()``. Each side accepts only a peer whose certificate the CA signed; the driver
also checks that the worker's certificate names the host it dials (a DNS or IP subject
alternative name).

``check_worker(address, tls, timeout)`` says in one line why a worker cannot be used: nothing
listens, the TLS handshake fails (and why: an unknown CA, a missing or refused certificate, a
name that does not match), or the service does not answer gRPC. It imports neither TensorFlow
nor TFF, so a command line refuses a bad worker within seconds.
"""
import dataclasses
import os
import socket
import ssl

# The preface of an HTTP/2 client connection and an empty SETTINGS frame (RFC 9113, 3.4 and 6.5):
# sent after the handshake, so that a server that refuses our certificate after a TLS 1.3
# handshake (it checks it once the client has finished) answers with its alert now.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


class WorkerUnusable(ConnectionError):
    """A TFF executor service that cannot be used: not reachable, or refused by TLS."""


@dataclasses.dataclass(frozen=True)
class MutualTls:
    """The PEM files of one party of a mutual-TLS connection.

    Args:
      ca: the certificate authority that signed the peers' certificates (PEM).
      cert: this party's certificate (chain), signed by ``ca`` (PEM).
      key: this party's private key (PEM, unencrypted).
    """

    ca: str
    cert: str
    key: str

    @classmethod
    def from_flags(cls, ca, cert, key, prefix="--tls"):
        """``MutualTls`` of three command-line values, or ``None`` when none is given.

        Raises ``ValueError`` (one line naming the flags) unless all three or none are given, or
        when a file cannot be read.

        Args:
          ca: the value of ``{prefix}-ca``.
          cert: the value of ``{prefix}-cert``.
          key: the value of ``{prefix}-key``.
          prefix: how the flags are named in the messages.
        """
        given = {f"{prefix}-ca": ca, f"{prefix}-cert": cert, f"{prefix}-key": key}
        if all(v is None for v in given.values()):
            return None
        missing = [name for name, value in given.items() if not value]
        if missing:
            raise ValueError(f"mutual TLS needs {', '.join(given)} together; {', '.join(missing)} missing")
        for name, path in given.items():
            if not os.path.isfile(path) or not os.access(path, os.R_OK):
                raise ValueError(f"{name} {path}: no readable file there")
        tls = cls(os.path.abspath(ca), os.path.abspath(cert), os.path.abspath(key))
        try:  # the files are PEM and the key is the certificate's: say so now, not at the first call
            tls.client_context()
        except (ssl.SSLError, ValueError) as error:
            raise ValueError(f"{prefix}-ca/-cert/-key: {_reason(error)}") from None
        return tls

    def _read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def channel_credentials(self):
        """The ``grpc.ChannelCredentials`` of the driver's channels (``grpc.secure_channel``)."""
        import grpc

        return grpc.ssl_channel_credentials(root_certificates=self._read(self.ca),
                                            private_key=self._read(self.key),
                                            certificate_chain=self._read(self.cert))

    def client_context(self):
        """An ``ssl.SSLContext`` that dials a worker as the driver's channels do (ALPN ``h2``)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca)
        context.load_cert_chain(self.cert, self.key)
        context.set_alpn_protocols(["h2"])
        return context

    def server_context(self):
        """The worker front's ``ssl.SSLContext``: TLS 1.2 or later, a client certificate signed
        by ``ca`` required, ALPN ``h2`` (gRPC clients insist on it)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert, self.key)
        context.load_verify_locations(cafile=self.ca)
        context.verify_mode = ssl.CERT_REQUIRED
        context.set_alpn_protocols(["h2"])
        return context


def _reason(error):
    """A short phrase for an ``ssl``/``OSError``: OpenSSL's reason when it gives one."""
    reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or str(error)
    return " ".join(str(reason).replace("_", " ").lower().split()) or type(error).__name__


def split_address(address):
    """``"host:port"`` (``[v6]:port`` too) as ``(host, port)``."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def check_worker(address, tls=None, timeout=5.0):
    """Raises ``WorkerUnusable`` (one line naming ``address`` and the reason) unless a TFF
    executor service answers gRPC there within ``timeout`` s, through mutual TLS if ``tls``.

    Args:
      address: ``"host:port"``.
      tls: the driver's ``MutualTls``, or ``None`` for a plain channel.
      timeout: the seconds to wait for each of the connection and the answer.
    """
    import grpc

    _check_connection(address, tls, timeout)
    channel = open_channel(address, tls)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise WorkerUnusable(f"no TFF executor service answers at {address} (waited {timeout:g} s"
                             f"{' through TLS' if tls else ''})") from None
    finally:
        channel.close()


def _check_connection(address, tls, timeout):
    """Something accepts TCP connections at ``address`` and, with ``tls``, completes a mutual
    handshake and answers HTTP/2 (a refused certificate shows here, in a fraction of a second)."""
    host, port = split_address(address)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as error:
        raise WorkerUnusable(f"no TFF executor service answers at {address} ({_reason(error)})") from None
    if tls is None:
        raw.close()
        return
    try:
        with tls.client_context().wrap_socket(raw, server_hostname=host) as conn:
            conn.sendall(_HTTP2_PREFACE)
            answered = bool(conn.recv(1))
    except ssl.SSLCertVerificationError as error:
        raise WorkerUnusable(f"the worker at {address} is not trusted: {error.verify_message} "
                             f"(its certificate must be signed by --tls-ca and name {host})") from None
    except ssl.SSLError as error:
        raise WorkerUnusable(f"the worker at {address} refused the TLS connection ({_reason(error)}): "
                             "is our certificate signed by the CA the worker trusts?") from None
    except OSError as error:
        raise WorkerUnusable(f"the worker at {address} dropped the TLS connection ({_reason(error)})") from None
    finally:
        raw.close()
    if not answered:  # after a TLS 1.3 handshake, the server checks our certificate
        raise WorkerUnusable(f"the worker at {address} closed the connection after the TLS handshake: it refused "
                             "our certificate (is --tls-cert signed by the CA the worker trusts?) or its executor "
                             "service is down")


# gRPC's default message cap (4 MB) is far below a step's values: the most protobuf allows.
GRPC_OPTIONS = (
    ("grpc.max_message_length", 2 * 1000 * 1000 * 1000),
    ("grpc.max_receive_message_length", 2 * 1000 * 1000 * 1000),
    ("grpc.max_send_message_length", 2 * 1000 * 1000 * 1000),
    # A worker that comes back is found within a second or two, not gRPC's default backoff of
    # up to two minutes: the run waits a bounded time for it (remote.RECONNECT_SECONDS).
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def open_channel(address, tls=None):
    """A gRPC channel to the service at ``address``: ``grpc.secure_channel`` with ``tls``'s
    credentials, else ``grpc.insecure_channel``.

    Args:
      address: ``"host:port"``.
      tls: ``MutualTls`` or ``None``.
    """
    import grpc

    if tls is None:
        return grpc.insecure_channel(address, list(GRPC_OPTIONS))
    return grpc.secure_channel(address, tls.channel_credentials(), list(GRPC_OPTIONS))
