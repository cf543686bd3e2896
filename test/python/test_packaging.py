"""The package installs with pip offline (its build backend needs nothing
beyond the standard library) and the installed copy works."""

import os
import subprocess
import sys
import tempfile
import unittest
import zipfile

from p2p_support import PYTHON_SRC

sys.path.insert(0, os.path.join(PYTHON_SRC, "build_backend"))
import stupidp2p_build  # noqa: E402

import stupidp2p  # noqa: E402


def _pip_available() -> bool:
    return subprocess.run([sys.executable, "-m", "pip", "--version"],
                          capture_output=True).returncode == 0


class PackagingTest(unittest.TestCase):
    def test_versions_agree(self):
        # One version for the whole project: the file VERSION, which the
        # server and the C library are built with too.
        with open(os.path.join(PYTHON_SRC, "..", "..", "..", "VERSION")) as f:
            version = f.read().strip()
        project, scripts = stupidp2p_build._pyproject()
        self.assertEqual(project["name"], "stupidp2p")
        self.assertNotIn("version", project)  # not a second copy
        self.assertEqual(stupidp2p.__version__, version)
        self.assertEqual(stupidp2p_build._version(), version)
        self.assertEqual(scripts, {"stupidp2p": "stupidp2p.__main__:main"})

    def test_wheel_contents(self):
        with tempfile.TemporaryDirectory() as d:
            name = stupidp2p_build.build_wheel(d)
            self.assertEqual(name, "stupidp2p-%s-py3-none-any.whl"
                             % stupidp2p.__version__)
            with zipfile.ZipFile(os.path.join(d, name)) as zf:
                names = set(zf.namelist())
                record = zf.read("stupidp2p-%s.dist-info/RECORD"
                                 % stupidp2p.__version__).decode()
        for must in ("stupidP2P.py", "stupidp2p/__init__.py",
                     "stupidp2p/client.py", "stupidp2p/py.typed"):
            self.assertIn(must, names)
            self.assertIn(must + ",sha256=", record)
        self.assertFalse([n for n in names if "__pycache__" in n])

    @unittest.skipUnless(_pip_available(), "pip is not installed")
    def test_pip_install_offline(self):
        with tempfile.TemporaryDirectory() as d:
            target = os.path.join(d, "site")
            env = dict(os.environ, PIP_NO_INDEX="1",
                       PIP_DISABLE_PIP_VERSION_CHECK="1")
            env.pop("PYTHONPATH", None)
            build = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--no-deps",
                 "--target", target, PYTHON_SRC],
                capture_output=True, text=True, env=env, timeout=120, cwd=d)
            self.assertEqual(build.returncode, 0, build.stdout + build.stderr)
            env["PYTHONPATH"] = target
            check = subprocess.run(
                [sys.executable, "-c",
                 "import stupidp2p, stupidP2P; "
                 "print(stupidp2p.__file__); "
                 "print(stupidP2P.stupidP2PClient.__module__); "
                 "print(stupidp2p.__version__)"],
                capture_output=True, text=True, env=env, timeout=30, cwd=d)
            self.assertEqual(check.returncode, 0, check.stderr)
            lines = check.stdout.split()
            self.assertTrue(lines[0].startswith(target), lines)
            self.assertEqual(lines[1], "stupidp2p.compat")
            self.assertEqual(lines[2], stupidp2p.__version__)


if __name__ == "__main__":
    unittest.main()
