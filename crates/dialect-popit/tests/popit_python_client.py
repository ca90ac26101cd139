# -*- coding: utf-8 -*-
"""Drives tintype's PopIt API with the published Python client, unchanged.

Usage (Python 2.7, with PopIt-Python 0.1.11, requests 2.6.0, slumber):
    popit_python_client.py BASE_URL API_KEY JPEG_PATH PNG_PATH

BASE_URL is http://HOST:PORT with a dotted HOST (the client builds its URL
as http://{instance}.{hostname}:{port}/api, so HOST is split at its first
dot). Everything goes through the client's own objects: PopIt(...) reads the
API entry point, and the slumber resources it hands out do the rest
(documents, remote images, image upload, replace and delete). Exits non-zero
with a traceback on the first mismatch; prints "popit client: ok" at the end.
"""

import re
import sys

import requests
from popit_api import PopIt, SchemaError
from slumber.exceptions import HttpClientError, HttpNotFoundError

COLLECTIONS = ["memberships", "organizations", "persons", "posts"]
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def client(base, api_key):
    m = re.match(r"^http://([^.:/]+)\.([^:/]+):(\d+)$", base)
    check(m is not None, "BASE_URL must be http://HOST:PORT with a dotted HOST: %r" % base)
    instance, hostname, port = m.group(1), m.group(2), int(m.group(3))
    return PopIt(instance=instance, hostname=hostname, port=port,
                 api_version="v0.1", api_key=api_key)


def client_error(call, status, errors):
    """Runs call, which must fail with an HTTP status and error body."""
    try:
        call()
    except HttpClientError as e:
        check(e.response.status_code == status,
              "expected %d, got %d: %r" % (status, e.response.status_code, e.content))
        if errors is not None:
            check(e.response.json() == errors, "error body %r" % e.content)
        return
    raise AssertionError("expected an HTTP %d" % status)


def fetch(url):
    r = requests.get(url)
    return r.status_code, r.headers.get("content-type"), r.content


def entry(doc, image_id):
    for e in doc["images"]:
        if e["_id"] == image_id:
            return e
    raise AssertionError("no image %s in %r" % (image_id, doc))


def check_entry_point(base, api):
    check(sorted(api.schemas) == COLLECTIONS, "schemas %r" % api.schemas)
    check(api.is_online(), "is_online")
    check(api.get_api_version() == "v0.1", "api version")
    root = api.getGenericApi().get()
    for c in COLLECTIONS:
        check(root["meta"][c + "_api_url"] == base + "/api/v0.1/" + c,
              "meta %r" % root["meta"])
    try:
        api.people
    except SchemaError:
        pass
    else:
        raise AssertionError("an unknown collection was accepted")
    print("entry point: %s" % ", ".join(sorted(root["meta"])))


def check_documents(api, anonymous):
    # Create with a generated id, read, update, list, delete.
    created = api.persons.post({"name": "Albert Keinstein"})["result"]
    pid = created["id"]
    check(OBJECT_ID.match(pid) is not None, "generated id %r" % pid)
    check(created["name"] == "Albert Keinstein", "created %r" % created)
    check(api.persons(pid).get()["result"]["name"] == "Albert Keinstein", "read")
    updated = api.persons(pid).put({"name": "Albert Einstein", "birth_date": "1879-03-14"})
    check(updated["result"] == {"id": pid, "name": "Albert Einstein",
                                "birth_date": "1879-03-14"}, "updated %r" % updated)
    bare = api.persons(pid).get(include_root="false")
    check(bare["name"] == "Albert Einstein", "include_root=false %r" % bare)

    # Create at a chosen id with PUT; list with paging.
    api.persons("marie-curie").put({"name": "Marie Curie"})
    page = api.persons.get(per_page=1)
    check(page["total"] == 2 and page["per_page"] == 1 and page["has_more"] is True,
          "page 1 %r" % page)
    check(len(page["result"]) == 1, "page 1 result %r" % page)
    page2 = api.persons.get(page=2, per_page=1)
    check(page2["has_more"] is False and "prev_url" in page2, "page 2 %r" % page2)
    names = sorted(p["name"] for p in page["result"] + page2["result"])
    check(names == ["Albert Einstein", "Marie Curie"], "listed %r" % names)

    # Organizations, memberships and posts the same way.
    org = api.organizations.post({"name": "Royal Society",
                                  "classification": "learned society"})["result"]
    oid = org["id"]
    check(api.organizations(oid).get()["result"]["classification"] == "learned society",
          "organization read")
    api.organizations(oid).put({"id": oid, "name": "The Royal Society"})
    check(api.organizations(oid).get()["result"] == {"id": oid, "name": "The Royal Society"},
          "organization replaced")
    mem = api.memberships.post({"person_id": pid, "organization_id": oid})["result"]
    post = api.posts.post({"label": "Fellow", "organization_id": oid})["result"]
    check(api.memberships(mem["id"]).get()["result"]["person_id"] == pid, "membership")
    check(api.posts(post["id"]).get()["result"]["label"] == "Fellow", "post")
    check(api.organizations.get()["total"] == 1, "organizations listed")

    # Errors as the client reports them.
    client_error(lambda: api.persons("no-such-person").get(), 404,
                 {"errors": ["id 'no-such-person' not found"]})
    check(issubclass(HttpNotFoundError, HttpClientError), "slumber's 404 class")
    client_error(lambda: api.persons(pid).put({"id": "someone-else"}), 400,
                 {"errors": ["URL id and document id are different"]})
    client_error(lambda: anonymous.persons.post({"name": "x"}), 401,
                 {"message": "Unauthorized"})
    client_error(lambda: anonymous.persons(pid).delete(), 401, {"message": "Unauthorized"})
    check(anonymous.persons(pid).get()["result"]["name"] == "Albert Einstein",
          "anonymous read")

    # Delete: 204, whether or not it existed.
    for coll, did in [("memberships", mem["id"]), ("posts", post["id"]),
                      ("persons", "marie-curie")]:
        check(getattr(api, coll)(did).delete() is True, "delete %s" % did)
        client_error(lambda: getattr(api, coll)(did).get(), 404, None)
    check(api.persons("marie-curie").delete() is True, "delete again")
    return pid, oid


def check_remote_images(api, pid):
    doc = api.persons(pid).put({"name": "Albert Einstein",
                                "image": "http://example.org/image.jpg"})["result"]
    check(doc["image"] == "http://example.org/image.jpg", "image %r" % doc)
    check(len(doc["images"]) == 1, "images %r" % doc)
    first = doc["images"][0]
    check(first["url"] == "http://example.org/image.jpg", "images[0] %r" % first)
    check(OBJECT_ID.match(first["_id"]) is not None, "images[0]._id %r" % first)

    doc = api.persons(pid).put({"name": "Albert Einstein", "images": [
        {"url": "http://example.org/image.jpg", "notes": "Official publicity shot",
         "source": "Example.org PR office"},
        {"url": "http://example.org/second.jpg", "license": "CC-BY"},
    ]})["result"]
    check(doc["image"] == "http://example.org/image.jpg", "image %r" % doc)
    check([e["url"] for e in doc["images"]] ==
          ["http://example.org/image.jpg", "http://example.org/second.jpg"], "urls %r" % doc)
    check(doc["images"][0]["notes"] == "Official publicity shot", "notes %r" % doc)
    check(doc["images"][1]["license"] == "CC-BY", "license %r" % doc)

    # An update that keeps the `_id`s keeps the entries; reordering moves
    # `image` to the new first one.
    kept = [doc["images"][1], doc["images"][0]]
    doc2 = api.persons(pid).put({"name": "Albert Einstein", "images": kept})["result"]
    check([e["_id"] for e in doc2["images"]] == [e["_id"] for e in kept], "ids kept %r" % doc2)
    check(doc2["image"] == "http://example.org/second.jpg", "image %r" % doc2)

    # Dropping them all leaves no image.
    doc3 = api.persons(pid).put({"name": "Albert Einstein", "images": []})["result"]
    check(doc3["images"] == [] and doc3["image"] is None, "emptied %r" % doc3)


def check_uploads(base, api, pid, oid, jpeg, png):
    person = api.persons(pid)
    with open(jpeg, "rb") as f:
        jpeg_bytes = f.read()
    with open(png, "rb") as f:
        png_bytes = f.read()

    # Upload after a remote image: appended, the remote one stays `image`.
    person.put({"name": "Albert Einstein", "image": "http://example.org/image.jpg"})
    with open(jpeg, "rb") as f:
        doc = person.image.post(data={"notes": "Official Portrait", "source": "PR office"},
                                files={"image": ("portrait.jpg", f, "image/jpeg")})["result"]
    check(len(doc["images"]) == 2, "after upload %r" % doc)
    check(doc["image"] == "http://example.org/image.jpg", "image %r" % doc)
    up = doc["images"][1]
    iid = up["_id"]
    url = "%s/persons/%s/image/%s" % (base, pid, iid)
    check(up["url"] == url, "uploaded url %r" % up)
    check(up["mime_type"] == "image/jpeg" and up["notes"] == "Official Portrait"
          and up["source"] == "PR office" and "created" in up, "uploaded entry %r" % up)
    status, ctype, body = fetch(url)
    check(status == 200 and ctype == "image/jpeg" and body == jpeg_bytes,
          "served upload: %d %s %d bytes" % (status, ctype, len(body)))

    # A second upload at the front becomes `image`.
    with open(png, "rb") as f:
        doc = person.image.post(data={"index": "first", "notes": "Front"},
                                files={"image": ("front.png", f, "image/png")})["result"]
    front = doc["images"][0]
    check(front["notes"] == "Front" and front["mime_type"] == "image/png", "front %r" % front)
    check(doc["image"] == front["url"], "image is the front upload %r" % doc)
    check("index" not in front, "index is not kept %r" % front)

    # Replace the first upload's file, keeping its id; new fields are merged.
    with open(png, "rb") as f:
        doc = person.image(iid).put(data={"notes": "Replaced"},
                                    files={"image": ("new.png", f, "image/png")})["result"]
    rep = entry(doc, iid)
    check(rep["url"] == url and rep["mime_type"] == "image/png"
          and rep["notes"] == "Replaced" and rep["source"] == "PR office", "replaced %r" % rep)
    status, ctype, body = fetch(url)
    check(status == 200 and ctype == "image/png" and body == png_bytes,
          "served replacement: %d %s %d bytes" % (status, ctype, len(body)))

    # A document PUT that sends the rendered entries back keeps the files.
    doc = person.get()["result"]
    doc["name"] = "A. Einstein"
    again = person.put(doc)["result"]
    check([e["_id"] for e in again["images"]] == [e["_id"] for e in doc["images"]],
          "round trip %r" % again)
    check(fetch(url)[2] == png_bytes, "file kept across a document PUT")

    # Errors of the upload routes.
    client_error(lambda: person.image.post(data={"notes": "none"},
                                           files={"other": ("x.txt", "x", "text/plain")}),
                 400, {"errors": ["No image sent"]})
    client_error(lambda: api.persons("nobody").image.post(
        files={"image": ("p.jpg", jpeg_bytes, "image/jpeg")}),
        400, {"errors": ["No doc found"]})
    client_error(lambda: person.image.post(
        files={"image": ("notes.txt", "not a picture at all", "text/plain")}), 400,
        {"errors": ["The uploaded image was of non-permitted type: text/plain"]})
    client_error(lambda: person.image("ffffffffffffffffffffffff").put(
        files={"image": ("p.jpg", jpeg_bytes, "image/jpeg")}),
        400, {"errors": ["No image with that id found"]})

    # Delete one upload: its URL goes, the others stay.
    check(person.image(iid).delete() is True, "delete one")
    doc = person.get()["result"]
    check(iid not in [e["_id"] for e in doc["images"]], "deleted entry gone %r" % doc)
    check(len(doc["images"]) == 2, "two left %r" % doc)
    check(fetch(url)[0] == 404, "deleted upload no longer served")

    # Delete all.
    front_url = doc["images"][0]["url"]
    check(person.image.delete() is True, "delete all")
    doc = person.get()["result"]
    check(doc["images"] == [] and doc["image"] is None, "all deleted %r" % doc)
    check(fetch(front_url)[0] == 404, "front upload no longer served")

    # An organization's upload goes with the organization.
    with open(jpeg, "rb") as f:
        odoc = api.organizations(oid).image.post(
            files={"image": ("logo.jpg", f, "image/jpeg")})["result"]
    logo = odoc["images"][0]["url"]
    check(logo == "%s/organizations/%s/image/%s" % (base, oid, odoc["images"][0]["_id"]),
          "logo url %r" % odoc)
    check(odoc["image"] == logo, "logo is image %r" % odoc)
    check(fetch(logo)[2] == jpeg_bytes, "logo served")
    check(api.organizations(oid).delete() is True, "delete organization")
    check(fetch(logo)[0] == 404, "logo gone with its organization")
    client_error(lambda: api.organizations(oid).get(), 404, None)

    check(person.delete() is True, "delete person")
    client_error(lambda: person.get(), 404, None)


def main():
    base, api_key, jpeg, png = sys.argv[1:5]
    check(sys.version_info[:2] == (2, 7), "run under Python 2.7, not %r" % (sys.version_info,))
    api = client(base, api_key)
    anonymous = client(base, None)
    check_entry_point(base, api)
    pid, oid = check_documents(api, anonymous)
    check_remote_images(api, pid)
    check_uploads(base, api, pid, oid, jpeg, png)
    print("popit client: ok")


if __name__ == "__main__":
    main()
