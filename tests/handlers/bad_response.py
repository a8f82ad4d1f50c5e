"""Return a deliberately malformed or hostile response, chosen by ``?case=NAME`` (see CASES)."""

CASES = {
    "crlf_value": {"statusCode": 200, "headers": {"X-Ok": "a\r\nX-Injected: 1"}, "body": "x"},
    "lf_value": {"statusCode": 200, "headers": {"X-Ok": "a\nX-Injected: 1"}, "body": "x"},
    "crlf_name": {"statusCode": 200, "headers": {"X-A\r\nX-Injected": "1"}, "body": "x"},
    "crlf_multi": {"statusCode": 200, "multiValueHeaders": {"X-M": ["ok", "b\r\nX-Injected: 1"]}, "body": "x"},
    "crlf_cookie": {"statusCode": 200, "cookies": ["a=b\r\nX-Injected: 1"], "body": "x"},
    "crlf_body_split": {"statusCode": 200, "headers": {"X-Ok": "a\r\n\r\nHTTP/1.1 200 OK\r\nX-Injected: 1"}},
    "status_text": {"statusCode": "abc", "body": "x"},
    "status_range": {"statusCode": 99999, "body": "x"},
    "status_null": {"statusCode": None, "body": "x"},
    "bad_base64": {"statusCode": 200, "isBase64Encoded": True, "body": "not base64!!"},
    "headers_list": {"statusCode": 200, "headers": [["a", "b"]], "body": "x"},
    "headers_nested": {"statusCode": 200, "headers": {"a": {"b": 1}}, "body": "x"},
    "body_object": {"statusCode": 200, "body": {"a": 1}},
    "multi_not_list": {"statusCode": 200, "multiValueHeaders": {"a": "b"}, "body": "x"},
    "surrogate": {"statusCode": 200, "headers": {"X-S": "\ud800"}, "body": "x"},
    "non_latin1": {"statusCode": 200, "headers": {"X-Name": "caf\u00e9 \u2615"}, "body": "ok"},
    "no_status": {"hello": "world"},
    "v2_cookies": {"statusCode": 200, "cookies": ["a=b"], "body": "x"},
}


def handler(event, context):
    case = (event.get("queryStringParameters") or {}).get("case", "")
    return CASES[case]
