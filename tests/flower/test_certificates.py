"""The credentials ``python -m flower_async local`` makes per run: the SuperLink's certificate
verifies against the run's CA for its addresses (checked by ``openssl``), and the nodes' keys
are EC keys in the OpenSSH format Flower reads."""
import shutil
import subprocess

import pytest

pytest.importorskip("cryptography", reason="cryptography (a Flower dependency) is not installed")

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key  # noqa: E402

from flower_async.certificates import make_run_credentials  # noqa: E402


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_server_certificate_verifies_for_its_hosts_only(tmp_path):
    paths = make_run_credentials(tmp_path, hosts=("127.0.0.1", "fl.example"), num_nodes=2)

    def verify(*extra):
        return subprocess.run(["openssl", "verify", "-CAfile", str(paths["ca"]), *extra, str(paths["cert"])],
                              capture_output=True, text=True)

    assert verify().returncode == 0
    assert verify("-verify_ip", "127.0.0.1").returncode == 0
    assert verify("-verify_hostname", "fl.example").returncode == 0
    assert verify("-verify_ip", "10.1.2.3").returncode != 0
    assert oct(paths["key"].stat().st_mode & 0o777) == "0o600"


def test_node_keys_are_openssh_ec_pairs(tmp_path):
    paths = make_run_credentials(tmp_path, num_nodes=2)
    for k in range(2):
        private = load_ssh_private_key(paths[f"node-{k}"].read_bytes(), password=None)
        public = load_ssh_public_key(paths[f"node-{k}.pub"].read_bytes())
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        assert private.public_key().public_numbers() == public.public_numbers()
    assert paths["node-0.pub"].read_bytes() != paths["node-1.pub"].read_bytes()
