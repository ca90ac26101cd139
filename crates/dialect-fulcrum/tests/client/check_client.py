"""Drives a tintype server with the official Fulcrum Python client.

Usage: check_client.py BASE_URL TOKEN IMAGE_PATH

Uploads IMAGE_PATH with photos.create, reads it back with photos.find and
photos.search, waits until it is processed, and downloads the original,
thumbnail and large versions with photos.media, checking the bytes. Exits
non-zero (with a traceback) on the first mismatch.
"""

import struct
import sys
import time
import uuid

import requests
from fulcrum import Fulcrum
from fulcrum.exceptions import NotFoundException, UnauthorizedException

# How long processing may take before the check gives up (a bound on the
# wait, not a performance assertion).
PROCESSING_WAIT_SECONDS = 300


def jpeg_size(data):
    """(width, height) from a JPEG's frame header."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    i = 2
    while i + 4 <= len(data):
        assert data[i] == 0xFF, "bad JPEG marker at %d" % i
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    raise AssertionError("JPEG without a frame header")


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def main():
    base, token, image_path = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(image_path, "rb") as f:
        original = f.read()
    width, height = jpeg_size(original)

    api = Fulcrum(token, uri=base)
    key = str(uuid.uuid4())

    created = api.photos.create(image_path, access_key=key)
    photo = created["photo"]
    check(photo["access_key"] == key, "create: access_key %r" % photo)
    check(photo["uploaded"] is True and photo["stored"] is True, "create: states %r" % photo)
    check(photo["file_size"] == len(original), "create: file_size %r" % photo["file_size"])
    check(photo["content_type"] == "image/jpeg", "create: content_type")

    found = api.photos.find(key)["photo"]
    check(found["access_key"] == key, "find: %r" % found)
    check(found["url"] == "%s/api/v2/photos/%s" % (base, key), "find: url %r" % found["url"])

    deadline = time.monotonic() + PROCESSING_WAIT_SECONDS
    while not found["processed"]:
        check(time.monotonic() < deadline, "the photo was never processed")
        time.sleep(0.1)
        found = api.photos.find(key)["photo"]

    page = api.photos.search({"processed": "true", "per_page": 10})
    keys = [p["access_key"] for p in page["photos"]]
    check(key in keys, "search: %r" % keys)
    check(page["total_count"] >= 1 and page["per_page"] == 10, "search envelope %r" % page)
    empty = api.photos.search({"record_id": "no-such-record"})
    check(empty["photos"] == [] and empty["total_count"] == 0, "search filter %r" % empty)

    got = api.photos.media(key)
    check(got == original, "media original: %d bytes, expected %d" % (len(got), len(original)))
    got = api.photos.media(key, "original")
    check(got == original, "media 'original' differs")

    for version, box in (("thumbnail", 200), ("large", 1080)):
        data = api.photos.media(key, version)
        w, h = jpeg_size(data)
        check(w <= box and h <= box, "%s is %dx%d" % (version, w, h))
        # The longer side fills the box unless that would enlarge.
        scale = min(box / width, box / height, 1.0)
        check(max(w, h) == round(max(width, height) * scale), "%s is %dx%d" % (version, w, h))
        # The URL in the photo answers the same bytes.
        same = requests.get(found[version], headers={"X-ApiToken": token})
        check(same.status_code == 200 and same.content == data, "%s URL differs" % version)

    try:
        api.photos.find("no-such-photo")
        raise AssertionError("find of a missing photo succeeded")
    except NotFoundException:
        pass
    try:
        Fulcrum("wrong-token", uri=base).photos.search()
        raise AssertionError("a wrong token was accepted")
    except UnauthorizedException:
        pass

    print("fulcrum client: ok (%s)" % key)


if __name__ == "__main__":
    main()
