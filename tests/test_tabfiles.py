"""Unit tests for :mod:`rsync_system_backup.disks.tabfiles` (pure parsing, no filesystem access)."""

import pytest

from rsync_system_backup.disks.tabfiles import (
    CrypttabEntry,
    FstabEntry,
    decode_escapes,
    find_crypttab_entry,
    find_fstab_entry,
    parse_crypttab,
    parse_fstab,
    resolve_device,
)

DEBIAN_CRYPTTAB = """\
# <target name>\t<source device>\t\t<key file>\t<options>
sda5_crypt UUID=3a8c6d49-6c8a-4e4b-9d2b-0c4a3c7f6b11 none luks,discard
backups\t/dev/disk/by-uuid/0b2f3c41-8c65-4d7b-a3cc-7e5c2d1f0a9e\t/root/keys/backups.key\tluks,noauto

  # an indented comment
swap  /dev/sdb2  /dev/urandom  swap,cipher=aes-xts-plain64,size=256
"""

DEBIAN_FSTAB = """\
# /etc/fstab: static file system information.
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
UUID=0a1b2c3d-0000-4000-8000-000000000001 /               ext4    errors=remount-ro 0       1
UUID=0a1b2c3d-0000-4000-8000-000000000002 none            swap    sw              0       0
/dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0
/dev/mapper/backups /mnt/backups ext4 noauto,nofail 0 2
"""


class TestCrypttab:

    def test_debian_example(self):
        assert parse_crypttab(DEBIAN_CRYPTTAB) == [
            CrypttabEntry('sda5_crypt', 'UUID=3a8c6d49-6c8a-4e4b-9d2b-0c4a3c7f6b11', None, ['luks', 'discard']),
            CrypttabEntry(
                'backups',
                '/dev/disk/by-uuid/0b2f3c41-8c65-4d7b-a3cc-7e5c2d1f0a9e',
                '/root/keys/backups.key',
                ['luks', 'noauto'],
            ),
            CrypttabEntry('swap', '/dev/sdb2', '/dev/urandom', ['swap', 'cipher=aes-xts-plain64', 'size=256']),
        ]

    def test_empty_and_comment_only_text(self):
        assert parse_crypttab('') == []
        assert parse_crypttab('\n\n   \n\t\n') == []
        assert parse_crypttab('# nothing here\n  # nor here\n#backups /dev/sdb1 none luks\n') == []

    @pytest.mark.parametrize('line, key_file, options', [
        ('backups /dev/sdb1', None, []),
        ('backups /dev/sdb1 none', None, []),
        ('backups /dev/sdb1 -', None, []),
        ('backups /dev/sdb1 /etc/keys/b.key', '/etc/keys/b.key', []),
        ('backups /dev/sdb1 none luks', None, ['luks']),
        ('backups /dev/sdb1 - luks,noauto', None, ['luks', 'noauto']),
        ('backups /dev/sdb1 NONE luks', 'NONE', ['luks']),
    ])
    def test_optional_fields(self, line, key_file, options):
        (entry,) = parse_crypttab(line + '\n')
        assert entry == CrypttabEntry('backups', '/dev/sdb1', key_file, options)

    def test_missing_final_newline(self):
        assert parse_crypttab('backups /dev/sdb1 none luks') == [
            CrypttabEntry('backups', '/dev/sdb1', None, ['luks']),
        ]

    def test_tabs_and_multiple_spaces(self):
        text = '\t  backups \t\t /dev/sdb1   \t none\t\tluks,discard   \t\n'
        assert parse_crypttab(text) == [CrypttabEntry('backups', '/dev/sdb1', None, ['luks', 'discard'])]

    def test_crlf_line_endings(self):
        text = 'a /dev/sda1 none luks\r\nb /dev/sdb1\r\n'
        assert parse_crypttab(text) == [
            CrypttabEntry('a', '/dev/sda1', None, ['luks']),
            CrypttabEntry('b', '/dev/sdb1', None, []),
        ]

    @pytest.mark.parametrize('line', [
        'backups /dev/sdb1 none luks # the USB disk',
        'backups /dev/sdb1 none luks #the USB disk',
        'backups /dev/sdb1 none luks\t# the USB disk',
        'backups /dev/sdb1 none luks #',
    ])
    def test_trailing_comment(self, line):
        assert parse_crypttab(line) == [CrypttabEntry('backups', '/dev/sdb1', None, ['luks'])]

    def test_trailing_comment_cuts_optional_fields(self):
        assert parse_crypttab('backups /dev/sdb1 # none luks') == [
            CrypttabEntry('backups', '/dev/sdb1', None, []),
        ]

    def test_hash_inside_field_is_not_a_comment(self):
        assert parse_crypttab('back#ups /dev/disk/by-label/a#b /keys/k#1 luks') == [
            CrypttabEntry('back#ups', '/dev/disk/by-label/a#b', '/keys/k#1', ['luks']),
        ]

    def test_octal_escapes(self):
        text = 'my\\040disk /dev/disk/by-label/My\\040Backups /root/key\\011file luks\n'
        assert parse_crypttab(text) == [
            CrypttabEntry('my disk', '/dev/disk/by-label/My Backups', '/root/key\tfile', ['luks']),
        ]

    def test_empty_options_are_dropped(self):
        (entry,) = parse_crypttab('backups /dev/sdb1 none ,luks,,noauto,\n')
        assert entry.options == ['luks', 'noauto']

    def test_bytes_input(self):
        assert parse_crypttab(b'backups /dev/sdb1 none luks\n') == [
            CrypttabEntry('backups', '/dev/sdb1', None, ['luks']),
        ]

    def test_no_break_space_is_not_a_separator(self):
        (entry,) = parse_crypttab('backups /dev/disk/by-label/a\u00a0b none luks\n')
        assert entry.source == '/dev/disk/by-label/a\u00a0b'

    def test_short_line_is_skipped(self):
        assert parse_crypttab('lonely\nbackups /dev/sdb1\n') == [CrypttabEntry('backups', '/dev/sdb1', None, [])]

    def test_extra_fields_are_ignored(self):
        text = 'backups /dev/sdb1 none luks surplus\n'
        assert parse_crypttab(text) == [CrypttabEntry('backups', '/dev/sdb1', None, ['luks'])]

    def test_entry_helpers(self):
        (entry,) = parse_crypttab('backups UUID=1234 none luks,keyscript=/lib/cryptsetup/scripts/passdev,tries=3\n')
        assert entry.device == '/dev/disk/by-uuid/1234'
        assert entry.options == ['luks', 'keyscript=/lib/cryptsetup/scripts/passdev', 'tries=3']

    def test_entries_are_tuples(self):
        (entry,) = parse_crypttab('backups /dev/sdb1 /key luks\n')
        target, source, key_file, options = entry
        assert (target, source, key_file, options) == ('backups', '/dev/sdb1', '/key', ['luks'])
        assert entry._asdict() == {'target': 'backups', 'source': '/dev/sdb1', 'key_file': '/key', 'options': ['luks']}


class TestFstab:

    def test_debian_example(self):
        assert parse_fstab(DEBIAN_FSTAB) == [
            FstabEntry('UUID=0a1b2c3d-0000-4000-8000-000000000001', '/', 'ext4', ['errors=remount-ro'], 0, 1),
            FstabEntry('UUID=0a1b2c3d-0000-4000-8000-000000000002', 'none', 'swap', ['sw'], 0, 0),
            FstabEntry('/dev/sr0', '/media/cdrom0', 'udf,iso9660', ['user', 'noauto'], 0, 0),
            FstabEntry('/dev/mapper/backups', '/mnt/backups', 'ext4', ['noauto', 'nofail'], 0, 2),
        ]

    def test_unconfigured_fstab(self):
        assert parse_fstab('# UNCONFIGURED FSTAB FOR BASE SYSTEM\n') == []
        assert parse_fstab('') == []

    @pytest.mark.parametrize('line, expected', [
        ('/dev/sdb1 /mnt', FstabEntry('/dev/sdb1', '/mnt', 'auto', ['defaults'], 0, 0)),
        ('/dev/sdb1 /mnt ext4', FstabEntry('/dev/sdb1', '/mnt', 'ext4', ['defaults'], 0, 0)),
        ('/dev/sdb1 /mnt ext4 noauto', FstabEntry('/dev/sdb1', '/mnt', 'ext4', ['noauto'], 0, 0)),
        ('/dev/sdb1 /mnt ext4 noauto 1', FstabEntry('/dev/sdb1', '/mnt', 'ext4', ['noauto'], 1, 0)),
        ('/dev/sdb1 /mnt ext4 noauto 1 2', FstabEntry('/dev/sdb1', '/mnt', 'ext4', ['noauto'], 1, 2)),
        ('/dev/sdb1 /mnt ext4 , 0 2', FstabEntry('/dev/sdb1', '/mnt', 'ext4', ['defaults'], 0, 2)),
    ])
    def test_optional_fields(self, line, expected):
        assert parse_fstab(line + '\n') == [expected]

    def test_tabs_multiple_spaces_and_indentation(self):
        text = '  \t/img.bin\t\t/mnt/test   ext4\t loop,noauto \t 0\t0  \n'
        assert parse_fstab(text) == [FstabEntry('/img.bin', '/mnt/test', 'ext4', ['loop', 'noauto'], 0, 0)]

    def test_trailing_comments(self):
        text = (
            '/dev/sdb1 /mnt/a ext4 defaults 0 2 # backup disk\n'
            '/dev/sdb2 /mnt/b ext4 defaults #pass and dump missing\n'
            '/dev/sdb3 /mnt/c#d ext4 defaults 0 0\n'
        )
        assert parse_fstab(text) == [
            FstabEntry('/dev/sdb1', '/mnt/a', 'ext4', ['defaults'], 0, 2),
            FstabEntry('/dev/sdb2', '/mnt/b', 'ext4', ['defaults'], 0, 0),
            FstabEntry('/dev/sdb3', '/mnt/c#d', 'ext4', ['defaults'], 0, 0),
        ]

    def test_comment_lines_between_entries(self):
        text = '#a\n/dev/sdb1 /mnt/a ext4 defaults 0 0\n\n   # b\n\t\n/dev/sdb2 /mnt/b\n'
        assert [entry.mount_point for entry in parse_fstab(text)] == ['/mnt/a', '/mnt/b']

    def test_octal_escapes(self):
        text = 'LABEL=My\\040Disk /mnt/my\\040backup\\011disk ext4 defaults,comment=a\\134b 0 0\n'
        assert parse_fstab(text) == [
            FstabEntry('LABEL=My Disk', '/mnt/my backup\tdisk', 'ext4', ['defaults', 'comment=a\\b'], 0, 0),
        ]

    def test_octal_escapes_utf8(self):
        (entry,) = parse_fstab('/dev/sdb1 /mnt/caf\\303\\251 ext4\n')
        assert entry.mount_point == '/mnt/caf\u00e9'

    def test_crlf(self):
        assert parse_fstab('/dev/sdb1 /mnt ext4 defaults 0 1\r\n') == [
            FstabEntry('/dev/sdb1', '/mnt', 'ext4', ['defaults'], 0, 1),
        ]

    def test_bytes_input(self):
        assert parse_fstab(b'/dev/sdb1 /mnt ext4 defaults 0 1\n') == [
            FstabEntry('/dev/sdb1', '/mnt', 'ext4', ['defaults'], 0, 1),
        ]

    def test_malformed_lines_are_skipped(self):
        text = (
            'lonely\n'
            '/dev/sdb1 /mnt/a ext4 defaults x 0\n'
            '/dev/sdb2 /mnt/b ext4 defaults 0 -1\n'
            '/dev/sdb3 /mnt/c ext4 defaults 0 \u00b2\n'
            '/dev/sdb4 /mnt/d ext4 defaults 0 0\n'
        )
        assert parse_fstab(text) == [FstabEntry('/dev/sdb4', '/mnt/d', 'ext4', ['defaults'], 0, 0)]

    def test_extra_fields_are_ignored(self):
        assert parse_fstab('/dev/sdb1 /mnt ext4 defaults 0 1 surplus\n') == [
            FstabEntry('/dev/sdb1', '/mnt', 'ext4', ['defaults'], 0, 1),
        ]


class TestFind:

    def test_find_crypttab_entry(self):
        entries = parse_crypttab(DEBIAN_CRYPTTAB)
        assert find_crypttab_entry(entries, 'backups').key_file == '/root/keys/backups.key'
        assert find_crypttab_entry(entries, 'swap').source == '/dev/sdb2'
        assert find_crypttab_entry(entries, 'missing') is None
        assert find_crypttab_entry(entries, 'Backups') is None
        assert find_crypttab_entry([], 'backups') is None

    def test_find_crypttab_entry_first_wins(self):
        entries = parse_crypttab('x /dev/a\nx /dev/b\n')
        assert find_crypttab_entry(entries, 'x').source == '/dev/a'

    def test_find_crypttab_entry_accepts_iterables(self):
        entries = iter(parse_crypttab(DEBIAN_CRYPTTAB))
        assert find_crypttab_entry(entries, 'swap').target == 'swap'

    def test_find_fstab_entry(self):
        entries = parse_fstab(DEBIAN_FSTAB)
        assert find_fstab_entry(entries, '/mnt/backups').device == '/dev/mapper/backups'
        assert find_fstab_entry(entries, '/mnt/backups/').device == '/dev/mapper/backups'
        assert find_fstab_entry(entries, '/mnt//backups').device == '/dev/mapper/backups'
        assert find_fstab_entry(entries, '/').passno == 1
        assert find_fstab_entry(entries, '/mnt') is None
        assert find_fstab_entry(entries, '/mnt/backups/sub') is None

    def test_find_fstab_entry_last_wins(self):
        entries = parse_fstab('/dev/a /mnt ext4\n/dev/b /mnt/ ext4\n')
        assert find_fstab_entry(entries, '/mnt').device == '/dev/b'

    def test_find_fstab_entry_with_escaped_mount_point(self):
        entries = parse_fstab('/dev/a /mnt/my\\040disk ext4\n')
        assert find_fstab_entry(entries, '/mnt/my disk').device == '/dev/a'


class TestResolveDevice:

    @pytest.mark.parametrize('source, expected', [
        ('UUID=3a8c6d49-6c8a-4e4b-9d2b-0c4a3c7f6b11', '/dev/disk/by-uuid/3a8c6d49-6c8a-4e4b-9d2b-0c4a3c7f6b11'),
        ('LABEL=backups', '/dev/disk/by-label/backups'),
        ('PARTUUID=0b2f3c41-02', '/dev/disk/by-partuuid/0b2f3c41-02'),
        ('PARTLABEL=EFI system', '/dev/disk/by-partlabel/EFI system'),
        ('/dev/sdb1', '/dev/sdb1'),
        ('/dev/disk/by-id/usb-Disk-0:0-part1', '/dev/disk/by-id/usb-Disk-0:0-part1'),
        ('/srv/images/disk.img', '/srv/images/disk.img'),
        ('relative/path', 'relative/path'),
        ('', ''),
    ])
    def test_mapping(self, source, expected):
        assert resolve_device(source) == expected

    def test_slash_in_value_is_escaped_like_udev(self):
        assert resolve_device('LABEL=a/b') == '/dev/disk/by-label/a\\x2fb'
        assert resolve_device('PARTLABEL=x/y/z') == '/dev/disk/by-partlabel/x\\x2fy\\x2fz'

    def test_quoted_values(self):
        assert resolve_device('UUID="1234"') == '/dev/disk/by-uuid/1234'
        assert resolve_device("LABEL='My Disk'") == '/dev/disk/by-label/My Disk'
        assert resolve_device('LABEL="unbalanced') == '/dev/disk/by-label/"unbalanced'

    def test_equals_sign_in_value(self):
        assert resolve_device('LABEL=a=b') == '/dev/disk/by-label/a=b'

    @pytest.mark.parametrize('source', [
        'uuid=1234',
        'Label=backups',
        'ID=usb-Disk',
        'FOO=bar',
        '/dev/disk/by-uuid/UUID=x',
        'UUID',
    ])
    def test_unknown_or_lowercase_tags_unchanged(self, source):
        assert resolve_device(source) == source

    @pytest.mark.parametrize('source', ['UUID=', 'LABEL=', 'PARTUUID=""', "PARTLABEL=''"])
    def test_empty_value(self, source):
        with pytest.raises(ValueError):
            resolve_device(source)

    def test_does_not_touch_the_filesystem(self, monkeypatch):
        import os

        def forbidden(*args, **kwargs):
            raise AssertionError('filesystem access')

        for name in ('stat', 'lstat', 'listdir', 'readlink'):
            monkeypatch.setattr(os, name, forbidden)
        monkeypatch.setattr(os.path, 'exists', forbidden)
        assert resolve_device('UUID=nonexistent') == '/dev/disk/by-uuid/nonexistent'


class TestDecodeEscapes:

    @pytest.mark.parametrize('raw, decoded', [
        ('plain', 'plain'),
        ('a\\040b', 'a b'),
        ('a\\011b', 'a\tb'),
        ('a\\012b', 'a\nb'),
        ('a\\134b', 'a\\b'),
        ('\\040\\040', '  '),
        ('a\\04', 'a\\04'),
        ('a\\x20', 'a\\x20'),
        ('a\\400', 'a\\400'),
        ('a\\089', 'a\\089'),
        ('a\\\\040', 'a\\ '),
        ('end\\', 'end\\'),
        ('caf\\303\\251', 'caf\u00e9'),
    ])
    def test_decode(self, raw, decoded):
        assert decode_escapes(raw) == decoded

    def test_invalid_utf8_round_trips(self):
        decoded = decode_escapes('a\\377b')
        assert decoded.encode('utf-8', 'surrogateescape') == b'a\xffb'
