import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { makeCA, type TestCA, tmpDir } from '../../test/helpers/certs.ts';
import {
  certificateIdentity,
  escapeValue,
  formatName,
  parseName,
  parseSubjectAltName,
  peerIdentity,
} from './certificate.ts';

let dir: string;
let ca: TestCA;

before(() => {
  dir = tmpDir('gatehouse-identity-');
  ca = makeCA(dir, 'Identity Root');
});

after(() => rmSync(dir, { recursive: true, force: true }));

const identityOf = (opts: Parameters<TestCA['issue']>[0]) =>
  certificateIdentity(new X509Certificate(ca.issue(opts).cert));

/** A stand-in for X509Certificate carrying hand-written renderings. */
function fakeCert(subject: string, subjectAltName: string | undefined): X509Certificate {
  return {
    subject,
    issuer: 'CN=Fake Root',
    subjectAltName,
    serialNumber: '01',
    fingerprint256: 'AA:BB',
    validToDate: new Date('2030-01-02T03:04:05Z'),
  } as unknown as X509Certificate;
}

describe('parseSubjectAltName', () => {
  it('parses plain entries of every type Node renders', () => {
    assert.deepEqual(
      parseSubjectAltName(
        'DNS:a.test, URI:spiffe://x/y, IP Address:127.0.0.1, email:a@b.test, Registered ID:1.2.3.4, othername:XmppAddr:x@corp',
      ),
      [
        { type: 'DNS', value: 'a.test' },
        { type: 'URI', value: 'spiffe://x/y' },
        { type: 'IP Address', value: '127.0.0.1' },
        { type: 'email', value: 'a@b.test' },
        { type: 'Registered ID', value: '1.2.3.4' },
        { type: 'othername', value: 'XmppAddr:x@corp' },
      ],
    );
    assert.deepEqual(parseSubjectAltName(''), []);
  });

  it('never splits inside quoted values and decodes their JSON escapes', () => {
    assert.deepEqual(
      parseSubjectAltName(
        'URI:"urn:x:a\\u002c DNS:evil.test", DNS:"we\\"ird.test", URI:"https://x/\\"q\\"\\\\b", ' +
          'DirName:"CN=dir cn\\u002cO=Dir\\\\\\u002c Org", email:"a\\u002cb@c.test", DNS:after.test',
      ),
      [
        { type: 'URI', value: 'urn:x:a, DNS:evil.test' },
        { type: 'DNS', value: 'we"ird.test' },
        { type: 'URI', value: 'https://x/"q"\\b' },
        { type: 'DirName', value: 'CN=dir cn,O=Dir\\, Org' },
        { type: 'email', value: 'a,b@c.test' },
        { type: 'DNS', value: 'after.test' },
      ],
    );
    // A raw (unescaped) comma inside quotes is also kept together.
    assert.deepEqual(parseSubjectAltName('URI:"a, b", DNS:c'), [
      { type: 'URI', value: 'a, b' },
      { type: 'DNS', value: 'c' },
    ]);
  });

  it('rejects renderings it cannot parse unambiguously', () => {
    for (const bad of ['DNS:"unterminated', 'DNS:a,DNS:b', 'no-colon', 'DNS:a, ', 'DNS:"a"b', 'DNS:"\\x"']) {
      assert.throws(() => parseSubjectAltName(bad), /unparseable subjectAltName/, bad);
    }
  });
});

describe('distinguished names', () => {
  it('produces RFC 4514 order and escaping from Node multi-line rendering', () => {
    // As rendered by Node for /C=US/O=Acme /OU=b/CN= #lead/CN=x+UID=u1/CN=ünï new\nline\ttab
    const rendered = 'C=US\nO=Acme\\ \nOU=b\nCN=\\ #lead/slash\nCN=x + UID=u1\nCN=ünï new\\0Aline\\09tab\\ ';
    const rdns = parseName(rendered);
    assert.deepEqual(rdns[4], [
      { type: 'CN', value: 'x' },
      { type: 'UID', value: 'u1' },
    ]);
    assert.deepEqual(rdns[3], [{ type: 'CN', value: ' #lead/slash' }]);
    assert.deepEqual(rdns[5], [{ type: 'CN', value: 'ünï new\nline\ttab ' }]);
    assert.equal(
      formatName(rdns),
      'CN=ünï new\\0Aline\\09tab\\ ,CN=x+UID=u1,CN=\\ #lead/slash,OU=b,O=Acme\\ ,C=US',
    );
    assert.deepEqual(parseName(''), []);
  });

  it('keeps escaped plus signs and spaces next to a multi-value separator', () => {
    assert.deepEqual(parseName('CN=a\\+b\\  + UID=\\ c'), [
      [
        { type: 'CN', value: 'a+b ' },
        { type: 'UID', value: ' c' },
      ],
    ]);
  });

  it('escapes values per RFC 4514', () => {
    assert.equal(escapeValue('Orders, Inc.'), 'Orders\\, Inc.');
    assert.equal(escapeValue('a"b+c;d<e>f\\g=h'), 'a\\"b\\+c\\;d\\<e\\>f\\\\g=h');
    assert.equal(escapeValue('#x#'), '\\#x#');
    assert.equal(escapeValue(' x '), '\\ x\\ ');
    assert.equal(escapeValue('a\u0000b\u007f'), 'a\\00b\\7F');
    assert.equal(escapeValue('ünï'), 'ünï');
  });
});

describe('certificateIdentity', () => {
  it('describes a real certificate', () => {
    const pem = ca.issue({
      cn: 'orders',
      o: 'Corp',
      dns: ['orders.corp.test', 'orders'],
      ips: ['10.1.2.3', '::1', 'fe80::1:0:0:2'],
      uris: ['spiffe://corp.test/ns/default/sa/orders'],
      emails: ['ops@corp.test'],
      client: true,
    });
    const cert = new X509Certificate(pem.cert);
    assert.deepEqual(certificateIdentity(cert), {
      subject: 'CN=orders,O=Corp',
      commonName: 'orders',
      dnsNames: ['orders.corp.test', 'orders'],
      uris: ['spiffe://corp.test/ns/default/sa/orders'],
      spiffeId: 'spiffe://corp.test/ns/default/sa/orders',
      ips: ['10.1.2.3', '::1', 'fe80::1:0:0:2'],
      emails: ['ops@corp.test'],
      serialNumber: cert.serialNumber,
      fingerprint256: cert.fingerprint256,
      notAfter: cert.validToDate.toISOString(),
      issuer: 'CN=Identity Root,O=Gatehouse Test',
    });
    assert.match(certificateIdentity(cert).notAfter, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
  });

  it('decodes quoted and escaped SAN values and subjects from a real certificate', () => {
    const cert = new X509Certificate(
      ca.issue({
        cn: 'Orders, Inc. "x" + y\\z #1 $HOME',
        o: 'Corp; <A>=B',
        dns: ['comma,dns.test', 'we"ird.test', 'plain.test'],
        uris: [
          'spiffe://corp.test/ns/a,b',
          'urn:test:a, DNS:evil.test, IP Address:6.6.6.6',
          'https://x.test/"q"\\b',
          'https://x.test/sp ace',
        ],
        emails: ['a,b@c.test', 'plain@c.test'],
        client: true,
      }).cert,
    );
    // Node quotes the unsafe values: make sure that is what we are parsing.
    assert.match(
      cert.subjectAltName ?? '',
      /URI:"urn:test:a\\u002c DNS:evil\.test\\u002c IP Address:6\.6\.6\.6"/,
    );
    const id = certificateIdentity(cert);
    assert.deepEqual(id.dnsNames, ['comma,dns.test', 'we"ird.test', 'plain.test']);
    assert.deepEqual(id.uris, [
      'spiffe://corp.test/ns/a,b',
      'urn:test:a, DNS:evil.test, IP Address:6.6.6.6',
      'https://x.test/"q"\\b',
      'https://x.test/sp ace',
    ]);
    assert.equal(id.spiffeId, 'spiffe://corp.test/ns/a,b');
    assert.deepEqual(id.ips, []);
    assert.deepEqual(id.emails, ['a,b@c.test', 'plain@c.test']);
    assert.equal(id.commonName, 'Orders, Inc. "x" + y\\z #1 $HOME');
    assert.equal(id.subject, 'CN=Orders\\, Inc. \\"x\\" \\+ y\\\\z #1 $HOME,O=Corp\\; \\<A\\>=B');
  });

  it('reports a SPIFFE id only when there is exactly one spiffe:// URI', () => {
    assert.equal(identityOf({ cn: 'none', uris: ['https://corp.test/orders'] }).spiffeId, null);
    assert.equal(identityOf({ cn: 'no-sans' }).spiffeId, null);
    const two = identityOf({ cn: 'two', uris: ['spiffe://corp.test/a', 'spiffe://corp.test/b'] });
    assert.equal(two.spiffeId, null);
    assert.deepEqual(two.uris, ['spiffe://corp.test/a', 'spiffe://corp.test/b']);
    const mixed = identityOf({ cn: 'mixed', uris: ['https://corp.test/x', 'spiffe://corp.test/ns/p/sa/q'] });
    assert.equal(mixed.spiffeId, 'spiffe://corp.test/ns/p/sa/q');
  });

  it('handles certificates without SANs or CN, and unusable IP renderings', () => {
    const id = certificateIdentity(fakeCert('O=Corp\nOU=Ops', undefined));
    assert.equal(id.commonName, null);
    assert.equal(id.subject, 'OU=Ops,O=Corp');
    assert.deepEqual([id.dnsNames, id.uris, id.ips, id.emails], [[], [], [], []]);
    assert.equal(id.notAfter, '2030-01-02T03:04:05.000Z');
    const ips = certificateIdentity(
      fakeCert(
        'CN=a\nCN=b',
        'IP Address:<invalid>, IP Address:0:0:0:0:0:0:0:0, IP Address:2001:DB8:0:0:1:0:0:1',
      ),
    );
    assert.deepEqual(ips.ips, ['::', '2001:db8::1:0:0:1']);
    assert.equal(ips.commonName, 'b', 'the most specific (last) CN');
  });
});

describe('peerIdentity', () => {
  const cert = fakeCert('CN=peer', 'DNS:peer.test');
  const socket = (authorized: boolean, peer: X509Certificate | undefined) =>
    ({ authorized, getPeerX509Certificate: () => peer }) as unknown as TLSSocket;

  it('is null unless the peer was authorized and presented a certificate', () => {
    assert.equal(peerIdentity(socket(false, cert)), null);
    assert.equal(peerIdentity(socket(true, undefined)), null);
    assert.equal(peerIdentity(socket(true, cert))?.commonName, 'peer');
  });
});
