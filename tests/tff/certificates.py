"""Certificates for mutual-TLS tests, made on the spot: a CA, a server certificate naming the
hosts the driver dials, client certificates (one signed by another CA, to be refused)."""
import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(folder, stem, certificate, key):
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def _certificate(subject, key, issuer, issuer_key, *, ca=False, hosts=(), usage=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if hosts:
        names = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_certificates(folder, hosts=("localhost", "127.0.0.1")):
    """Writes into ``folder`` a CA (``ca.pem``), a worker certificate for ``hosts``
    (``worker.pem``/``.key``), a driver certificate (``driver.pem``/``.key``) and a certificate of
    another CA (``stranger.pem``/``.key``); returns ``{name: path}``."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test CA", ca_key, "test CA", ca_key, ca=True)
    paths = {"ca": str(folder / "ca.pem")}
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for stem, usage, extra in (("worker", ExtendedKeyUsageOID.SERVER_AUTH, hosts),
                               ("driver", ExtendedKeyUsageOID.CLIENT_AUTH, ())):
        key = ec.generate_private_key(ec.SECP256R1())
        paths[f"{stem}_cert"], paths[f"{stem}_key"] = _write(
            folder, stem, _certificate(stem, key, "test CA", ca_key, hosts=extra, usage=usage), key)
    other_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    paths["stranger_cert"], paths["stranger_key"] = _write(
        folder, "stranger", _certificate("stranger", key, "other CA", other_key,
                                         usage=ExtendedKeyUsageOID.CLIENT_AUTH), key)
    return paths
