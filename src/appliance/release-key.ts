/**
 * The PMB release signing key (public half). `pmb upgrade` installs only what a manifest signed by this
 * key names. The secret half is kept offline by the maintainer and given to `npm run release -- --key`;
 * it is never in this repository. Replacing this key is a release of its own, signed by the old key.
 *
 * Fingerprint: 981ce306f6f85d62d3bcf158aa2f4ee3514b4657
 */
export const RELEASE_KEY_FINGERPRINT = '981ce306f6f85d62d3bcf158aa2f4ee3514b4657';

export const RELEASE_PUBLIC_KEY = `
-----BEGIN PGP PUBLIC KEY BLOCK-----

xjMEawaklxYJKwYBBAHaRw8BAQdA2wpo7Ue6MeMwOcgTqiQ2aX8g7lA2aKtx
3H6Qsrto33PNLlBNQiByZWxlYXNlIHNpZ25pbmcga2V5IDxyZWxlYXNlc0Bw
bWIuaW52YWxpZD7CwBMEExYKAIUFgmsGpJcDCwkHCRCqL07jUUtGV0UUAAAA
AAAcACBzYWx0QG5vdGF0aW9ucy5vcGVucGdwanMub3JnNLUx7R6XXt0Q7IaJ
JZiDlubQsdiruO1LOPHQLNG22YIFFQoIDgwEFgACAQIZAQKbAwIeARYhBJgc
4wb2+F1i07zxWKovTuNRS0ZXAAAbtgEA1r97LdGSk6JN9+JdYcCooQuDdc0h
M60w10k3m8nHmdoBAPOQpfAVPj9J2fGJ9Jfmng3pPNJ6t8YHUswCRiBRwIYM
zjgEawaklxIKKwYBBAGXVQEFAQEHQHhoq2tDPNmGxe7uIHazs3qyQMCbyUO5
XPaFlIpGoAEWAwEIB8K+BBgWCgBwBYJrBqSXCRCqL07jUUtGV0UUAAAAAAAc
ACBzYWx0QG5vdGF0aW9ucy5vcGVucGdwanMub3JnoRu9gOofswSjxPF3/zNb
UbBGrNul+RAFcv+/yNsK/mQCmwwWIQSYHOMG9vhdYtO88ViqL07jUUtGVwAA
nSABAKhrI2Alton5n0NBXhnP8u8ZVsLA/9BhApsfaGR9SX8iAP9ldAg654l0
Dxo5WOV+e7Vya3K9l5xSWIkN+Fz1mW0jAQ==
=kEVL
-----END PGP PUBLIC KEY BLOCK-----
`;
