#!/usr/bin/env python3
"""Write an SPDX 2.3 JSON SBOM for a container image.

    scripts/images/sbom.py IMAGE OUT.json [--platform linux/arm64]

Packages come from the image's own package databases: the dpkg status file
(Debian packages) and the dist-info METADATA of every Python environment's
site-packages (pip-installed packages, such as the Selkies venv). Python
modules under dist-packages belong to Debian packages and are already counted
there.

The filesystem is read with `docker create` + `docker export` and nothing in
the image is run, so this works for images without a shell and for images of
another architecture (`--platform` pulls that variant if it is missing).

SOURCE_DATE_EPOCH, when set, fixes the creation time, which with the image id
also determines the document namespace: the same image gives the same SBOM.
"""

import argparse
import email.parser
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import uuid
from urllib.parse import quote

TOOL = "streamspace-sbom-1.0"
NAMESPACE_BASE = "https://spdx.org/spdxdocs/"


def docker(*args):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


def parse_dpkg_status(text):
    """Installed packages from a dpkg status file (deb822 paragraphs)."""
    packages = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        # Removed packages can stay listed as "deinstall ok config-files".
        if fields.get("Package") and fields.get("Status", "").endswith(" installed"):
            packages.append(fields)
    return packages


def parse_os_release(text):
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values


SITE_PACKAGES_METADATA = re.compile(r"(^|/)site-packages/[^/]+\.dist-info/METADATA$")


def read_image(image, platform):
    """dpkg status, os-release and pip METADATA files from the image."""
    create = ["create", "--entrypoint", "/streamspace-sbom-never-runs"]
    if platform:
        create += ["--platform", platform]
    container = docker(*create, image)
    found = {"dpkg": [], "os-release": {}, "pip": []}
    try:
        export = subprocess.Popen(["docker", "export", container], stdout=subprocess.PIPE)
        # Stream mode ("r|"): one pass over the export, no temporary copy.
        with tarfile.open(fileobj=export.stdout, mode="r|") as tar:
            for member in tar:
                name = member.name.lstrip("./")
                if not member.isfile():
                    continue
                if name == "var/lib/dpkg/status" or name.startswith("var/lib/dpkg/status.d/"):
                    found["dpkg"].append(tar.extractfile(member).read().decode("utf-8", "replace"))
                elif name in ("usr/lib/os-release", "etc/os-release") and not found["os-release"]:
                    found["os-release"] = parse_os_release(tar.extractfile(member).read().decode())
                elif SITE_PACKAGES_METADATA.search(name):
                    text = tar.extractfile(member).read().decode("utf-8", "replace")
                    found["pip"].append(("/" + name.rsplit("/", 2)[0], text))
        if export.wait() != 0:
            raise RuntimeError(f"docker export {container} failed")
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", container], capture_output=True)
    return found


class Ids:
    """SPDX identifiers: [A-Za-z0-9.-] only, unique within the document."""

    def __init__(self):
        self.used = set()

    def make(self, *parts):
        base = "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", "-".join(parts)).strip("-")
        ident, n = base, 1
        while ident in self.used:
            n += 1
            ident = f"{base}-{n}"
        self.used.add(ident)
        return ident


def purl_part(value):
    return quote(value, safe=".-_~")


def url_or_none(value):
    return value if value and re.match(r"^https?://\S+$", value) else None


def package(ident, name, version, purl, **extra):
    entry = {
        "SPDXID": ident,
        "name": name,
        "versionInfo": version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": purl,
        }],
    }
    entry.update({k: v for k, v in extra.items() if v})
    return entry


def deb_packages(ids, statuses, distro):
    packages = []
    for status in statuses:
        for fields in parse_dpkg_status(status):
            name, version, arch = fields["Package"], fields.get("Version", ""), fields.get("Architecture", "")
            qualifiers = f"?arch={purl_part(arch)}" + (f"&distro={purl_part(distro)}" if distro else "")
            source = fields.get("Source", "")
            packages.append(package(
                ids.make("deb", name, arch),
                name,
                version,
                f"pkg:deb/debian/{purl_part(name)}@{purl_part(version)}{qualifiers}",
                supplier="Organization: Debian",
                homepage=url_or_none(fields.get("Homepage")),
                sourceInfo=f"Debian binary package built from source package {source}" if source else None,
                primaryPackagePurpose="LIBRARY" if name.startswith("lib") else "APPLICATION",
            ))
    return packages


def pip_packages(ids, metadata_files):
    packages = []
    for location, text in metadata_files:
        meta = email.parser.Parser().parsestr(text, headersonly=True)
        name, version = meta.get("Name", ""), meta.get("Version", "")
        if not name:
            continue
        normalized = re.sub(r"[-_.]+", "-", name).lower()
        homepage = meta.get("Home-page")
        for project_url in meta.get_all("Project-URL") or []:
            label, _, url = project_url.partition(",")
            if not homepage and label.strip().lower() in ("homepage", "home", "source"):
                homepage = url.strip()
        entry = package(
            ids.make("pypi", normalized, version),
            name,
            version,
            f"pkg:pypi/{purl_part(normalized)}@{purl_part(version)}",
            homepage=url_or_none(homepage),
            sourceInfo=f"Python package installed in {location}",
            primaryPackagePurpose="LIBRARY",
        )
        # Core metadata 2.4 makes License-Expression an SPDX expression; the
        # older free-text License field can only be a comment.
        expression = meta.get("License-Expression")
        if expression:
            entry["licenseDeclared"] = expression.strip()
        elif meta.get("License") and len(meta["License"]) < 200:
            entry["licenseComments"] = f"License metadata: {meta['License'].strip()}"
        packages.append(entry)
    return packages


def build_document(image, platform, found):
    info = json.loads(docker("image", "inspect", image))[0]
    image_id = info["Id"]
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch) if epoch else None))
    ids = Ids()
    os_release = found["os-release"]
    distro = f"{os_release.get('ID', '')}-{os_release.get('VERSION_ID', '')}".strip("-")

    image_pkg = {
        "SPDXID": ids.make("Image"),
        "name": image,
        "versionInfo": image_id,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
        "comment": f"Image {image_id} for {info.get('Os')}/{info.get('Architecture')}",
    }
    if info.get("RepoDigests"):
        repository, _, digest = info["RepoDigests"][0].partition("@")
        image_pkg["externalRefs"] = [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": f"pkg:oci/{purl_part(repository.rsplit('/', 1)[-1])}@{purl_part(digest)}"
                                f"?repository_url={purl_part(repository)}",
        }]
    contents = []
    if os_release:
        contents.append(package(
            ids.make("os", os_release.get("ID", "os")),
            os_release.get("ID", "os"),
            os_release.get("VERSION_ID", "NOASSERTION"),
            f"pkg:generic/{purl_part(os_release.get('ID', 'os'))}@{purl_part(os_release.get('VERSION_ID', ''))}",
            primaryPackagePurpose="OPERATING-SYSTEM",
            comment=os_release.get("PRETTY_NAME"),
        ))
    contents += sorted(deb_packages(ids, found["dpkg"], distro), key=lambda p: p["name"])
    contents += sorted(pip_packages(ids, found["pip"]), key=lambda p: p["name"].lower())

    relationships = [{
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": image_pkg["SPDXID"],
    }]
    relationships += [{
        "spdxElementId": image_pkg["SPDXID"],
        "relationshipType": "CONTAINS",
        "relatedSpdxElement": p["SPDXID"],
    } for p in contents]

    namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"{image_id}/{platform or ''}/{created}")
    safe_name = re.sub(r"[^A-Za-z0-9.-]+", "-", image)
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{image} ({platform})" if platform else image,
        "documentNamespace": f"{NAMESPACE_BASE}{safe_name}-{namespace}",
        "creationInfo": {"created": created, "creators": [f"Tool: {TOOL}"]},
        "packages": [image_pkg, *contents],
        "relationships": relationships,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", help="image reference, e.g. streamspace/base:latest")
    parser.add_argument("out", help="where to write the SPDX JSON document")
    parser.add_argument("--platform", help="platform variant to read, e.g. linux/arm64")
    args = parser.parse_args()
    found = read_image(args.image, args.platform)
    if not found["dpkg"]:
        sys.exit(f"sbom: no dpkg database in {args.image}")
    document = build_document(args.image, args.platform, found)
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2)
        out.write("\n")
    counts = {}
    for p in document["packages"][1:]:
        kind = p["externalRefs"][0]["referenceLocator"].split("/", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    print(f"sbom: {args.out}: {summary}", file=sys.stderr)


if __name__ == "__main__":
    main()
