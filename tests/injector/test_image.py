#!/usr/bin/env python3
"""The image archive: builds the minimal variant of the sidetap image with
manifests/image/build.sh (buildah, vfs, no daemon) from this build's binaries, then checks
the OCI archive: layout file, index, every blob's sha256 and size, manifest and config,
the user, the entrypoint, the binaries, and that every shared library each binary needs
(and its ELF interpreter) is inside the image.

The full image (debootstrap, minutes) is checked too when SIDETAP_IMAGE_ARCHIVE names an
archive made by `build.sh OUT.tar`, e.g. after a by-hand build.

usage: test_image.py SOURCE_ROOT BUILD_DIR"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest

ROOT = BUILD = None
BINARIES = ["sidetap-injector", "sidetap-await", "sidetap-proxy", "sidetap-init", "sidetap-collector"]
BUILT = {"sidetap-injector": "injector", "sidetap-await": "injector", "sidetap-proxy": "proxy",
         "sidetap-init": "proxy/init", "sidetap-collector": "collector"}
LIB_DIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib",
            "/usr/local/lib"]


class Image:
    """An OCI archive, verified and flattened into {path: TarInfo} plus file bytes."""

    def __init__(self, tc, archive, tmp):
        self.dir = os.path.join(tmp, "oci")
        os.makedirs(self.dir)
        with tarfile.open(archive) as t:
            t.extractall(self.dir, filter="data")
        with open(os.path.join(self.dir, "oci-layout")) as f:
            tc.assertEqual(json.load(f), {"imageLayoutVersion": "1.0.0"})
        blobs = os.path.join(self.dir, "blobs", "sha256")
        for name in os.listdir(blobs):
            with open(os.path.join(blobs, name), "rb") as f:
                tc.assertEqual(hashlib.sha256(f.read()).hexdigest(), name, "blob digest mismatch")
        with open(os.path.join(self.dir, "index.json")) as f:
            index = json.load(f)
        tc.assertEqual(index["schemaVersion"], 2)
        tc.assertEqual(len(index["manifests"]), 1)
        self.manifest = self.blob_json(tc, index["manifests"][0], "application/vnd.oci.image.manifest.v1+json")
        self.config = self.blob_json(tc, self.manifest["config"], "application/vnd.oci.image.config.v1+json")
        tc.assertEqual(self.config["os"], "linux")
        tc.assertEqual(self.config["architecture"], "amd64")
        self.files = {}
        self.data = {}
        for layer in self.manifest["layers"]:
            path = self.blob_path(tc, layer)
            tc.assertIn(layer["mediaType"], ("application/vnd.oci.image.layer.v1.tar",
                                             "application/vnd.oci.image.layer.v1.tar+gzip"))
            with tarfile.open(path) as t:
                for m in t.getmembers():
                    name = "/" + m.name.lstrip("./").rstrip("/")
                    base = os.path.basename(name)
                    if base.startswith(".wh."):
                        gone = os.path.join(os.path.dirname(name), base[4:])
                        self.files = {k: v for k, v in self.files.items() if k != gone and not k.startswith(gone + "/")}
                        continue
                    self.files[name] = m
                    if m.isfile() and (name.startswith("/usr/local/bin/") or ".so" in base):
                        self.data[name] = t.extractfile(m).read()
        tc.assertEqual(len(self.config["rootfs"]["diff_ids"]), len(self.manifest["layers"]))

    def blob_path(self, tc, desc):
        algo, hexd = desc["digest"].split(":")
        tc.assertEqual(algo, "sha256")
        path = os.path.join(self.dir, "blobs", "sha256", hexd)
        tc.assertTrue(os.path.exists(path), "missing blob " + desc["digest"])
        tc.assertEqual(os.path.getsize(path), desc["size"], "size mismatch for " + desc["digest"])
        return path

    def blob_json(self, tc, desc, media):
        tc.assertEqual(desc["mediaType"], media)
        with open(self.blob_path(tc, desc)) as f:
            return json.load(f)

    def resolve(self, path, hops=0):
        """Follows symlinks (also in parent folders) inside the image; None if absent."""
        if hops > 40:
            return None
        parts = path.strip("/").split("/")
        cur = ""
        for i, p in enumerate(parts):
            cur = cur + "/" + p
            m = self.files.get(cur)
            if m is None:
                return None
            if m.issym():
                target = m.linkname if m.linkname.startswith("/") else os.path.normpath(
                    os.path.join(os.path.dirname(cur), m.linkname))
                rest = "/".join(parts[i + 1:])
                return self.resolve(target + ("/" + rest if rest else ""), hops + 1)
        return cur

    def needed(self, tc, tmp, binary):
        path = os.path.join(tmp, os.path.basename(binary))
        with open(path, "wb") as f:
            f.write(self.data[binary])
        dyn = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
        libs = [line.split("[")[1].split("]")[0] for line in dyn.splitlines() if "(NEEDED)" in line]
        hdr = subprocess.run(["readelf", "-l", path], capture_output=True, text=True, check=True).stdout
        interp = [line.split(":", 1)[1].strip(" ]") for line in hdr.splitlines() if "Requesting program interpreter" in line]
        return libs, interp

    def check_libraries(self, tc, tmp, binary):
        libs, interp = self.needed(tc, tmp, binary)
        tc.assertTrue(libs, binary + " has no NEEDED entries")
        for i in interp:
            tc.assertIsNotNone(self.resolve(i), "%s: interpreter %s missing" % (binary, i))
        seen = set()
        todo = list(libs)
        while todo:
            lib = todo.pop()
            if lib in seen:
                continue
            seen.add(lib)
            found = next((r for d in LIB_DIRS if (r := self.resolve(d + "/" + lib))), None)
            tc.assertIsNotNone(found, "%s needs %s, which is not in the image" % (binary, lib))
            if found in self.data:
                more, _ = self.needed(tc, tmp, found)
                todo.extend(more)
        return seen


class ImageArchive(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sidetap-img-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check(self, archive, full):
        img = Image(self, archive, self.tmp)
        cfg = img.config["config"]
        self.assertEqual(cfg["User"], "65532:65532")
        self.assertEqual(cfg["Entrypoint"], ["/usr/local/bin/sidetap-collector"])
        present = [b for b in BINARIES if "/usr/local/bin/" + b in img.files]
        self.assertIn("sidetap-injector", present)
        self.assertIn("sidetap-await", present)
        if full:
            # Every binary this tree builds (build.sh --allow-missing leaves out the others).
            built = [b for b in BINARIES if os.path.exists(os.path.join(BUILD, BUILT[b], b))]
            self.assertEqual([b for b in present if b in built], built)
            self.assertIsNotNone(img.resolve("/usr/sbin/iptables-restore"), "iptables missing")
            self.assertIsNotNone(img.resolve("/etc/ssl/certs/ca-certificates.crt"))
        for b in present:
            m = img.files["/usr/local/bin/" + b]
            self.assertTrue(m.isfile() and m.mode & 0o111, b + " is not an executable file")
            self.assertTrue(img.data["/usr/local/bin/" + b].startswith(b"\x7fELF"))
            libs = img.check_libraries(self, self.tmp, "/usr/local/bin/" + b)
            self.assertIn("libc.so.6", libs)
        with open(os.path.join(self.tmp, "passwd"), "wb") as f:
            f.write(b"")
        passwd = img.resolve("/etc/passwd")
        self.assertIsNotNone(passwd)
        return img, present

    def test_minimal_image(self):
        if shutil.which("buildah") is None or os.geteuid() != 0:
            self.skipTest("needs root and buildah (scripts/install-deps installs it)")
        out = os.path.join(self.tmp, "sidetap-minimal.tar")
        p = subprocess.run([os.path.join(ROOT, "manifests", "image", "build.sh"), "--minimal", "--bin-dir", BUILD,
                            "--tag", "sidetap:test", out], capture_output=True, text=True, timeout=240)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("==> wrote " + out, p.stdout)
        img, present = self.check(out, full=False)
        self.assertEqual(img.config["config"]["Labels"]["org.opencontainers.image.ref.name"], "sidetap:test")

    def test_build_script_refuses_bad_use(self):
        p = subprocess.run([os.path.join(ROOT, "manifests", "image", "build.sh")], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("usage: build.sh", p.stderr)
        p = subprocess.run([os.path.join(ROOT, "manifests", "image", "build.sh"), "--bogus", "x.tar"],
                           capture_output=True, text=True)
        self.assertEqual((p.returncode, p.stderr.strip()), (2, "build.sh: unknown option --bogus"))

    def test_full_image_when_built(self):
        archive = os.environ.get("SIDETAP_IMAGE_ARCHIVE")
        if not archive:
            self.skipTest("set SIDETAP_IMAGE_ARCHIVE to an archive from manifests/image/build.sh")
        self.check(archive, full=True)


if __name__ == "__main__":
    ROOT, BUILD = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0], "-v"])
