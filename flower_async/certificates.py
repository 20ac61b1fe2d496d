"""The TLS certificates and SuperNode keys of a run, made with ``cryptography`` (a Flower
dependency): a CA, the SuperLink's certificate signed by it for the given hosts, and one EC key
pair per SuperNode in OpenSSH format (what ``flwr supernode register`` and
``flower-supernode --auth-supernode-private-key`` read).

For a deployment on several hosts, make them once with ``make_run_credentials`` (or with
``openssl``/``ssh-keygen``, docs/flower.md) and copy ``ca.crt`` and each node's private key to
its host.
"""
import datetime
import ipaddress
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_private(path, key, encoding_format):
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, encoding_format, serialization.NoEncryption()))
    path.chmod(0o600)


def make_run_credentials(folder, hosts=("127.0.0.1", "localhost"), num_nodes=1, days=30):
    """Writes ``ca.crt``, ``server.pem``, ``server.key`` and ``node-K.key``/``node-K.key.pub``
    for K < ``num_nodes`` into ``folder``; returns ``{name: path}``.

    Args:
      folder: where to write them (created).
      hosts: the SuperLink's addresses or DNS names (its certificate's subject alternative names).
      num_nodes: the SuperNodes' key pairs to make.
      days: the certificates' validity.
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder().subject_name(_name("flower_async CA")).issuer_name(_name("flower_async CA"))
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .sign(ca_key, hashes.SHA256()))
    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca_cert.subject)
                   .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.SubjectAlternativeName(names), critical=False)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .sign(ca_key, hashes.SHA256()))
    paths = {"ca": folder / "ca.crt", "cert": folder / "server.pem", "key": folder / "server.key"}
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(paths["key"], server_key, serialization.PrivateFormat.PKCS8)
    for k in range(num_nodes):
        key = ec.generate_private_key(ec.SECP384R1())
        private, public = folder / f"node-{k}.key", folder / f"node-{k}.key.pub"
        _write_private(private, key, serialization.PrivateFormat.OpenSSH)
        public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                         serialization.PublicFormat.OpenSSH) + b"\n")
        paths[f"node-{k}"], paths[f"node-{k}.pub"] = private, public
    return paths
