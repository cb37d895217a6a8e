// Dictionaries of the v3 series payload: strings, tag sets and resource sets.

package fakeintake

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/DataDog/datadog-api-client-go/v2/api/datadogV2"
)

// dictionaries decodes every dictionary of the MetricData and applies the
// payload-wide Metadata tags and resources to the sets, as Datadog's own
// reader (the Agent's test/fakeintake metricReaderV3) does.
func (d *v3Decoder) dictionaries() *rejection {
	md := d.md
	var rej *rejection
	if d.names, rej = v3Strings("dictNameStr", md.DictNameStr); rej != nil {
		return rej
	}
	tags, rej := v3Strings("dictTagStr", md.DictTagStr)
	if rej != nil {
		return rej
	}
	if d.units, rej = v3Strings("dictUnitStr", md.DictUnitStr); rej != nil {
		return rej
	}
	if d.sourceTypes, rej = v3Strings("dictSourceTypeName", md.DictSourceTypeName); rej != nil {
		return rej
	}
	resStr, rej := v3Strings("dictResourceStr", md.DictResourceStr)
	if rej != nil {
		return rej
	}
	if len(md.DictOriginInfo)%3 != 0 {
		return v3Undecodable("dictOriginInfo has %d entries: not (product, category, service) triples", len(md.DictOriginInfo))
	}
	d.origins = len(md.DictOriginInfo)/3 + 1
	if d.tagsets, rej = d.tagsetDict(md.DictTagsets, tags); rej != nil {
		return rej
	}
	if d.resources, rej = v3Resources(md.DictResourceLen, md.DictResourceType, md.DictResourceName, resStr); rej != nil {
		return rej
	}
	return d.metadata()
}

// metadata adds the payload-wide tags to every tag set (the empty one too)
// and the payload-wide resources to every resource set (not to "none").
func (d *v3Decoder) metadata() *rejection {
	metaTags, metaRes := d.meta.GetTags(), d.meta.GetResources()
	for i, t := range metaTags {
		if t == "" {
			return v3Invalid("metadata.tags[%d] is empty", i)
		}
	}
	if len(metaRes)%2 != 0 {
		return v3Invalid("metadata.resources has %d entries: not [type, name] pairs", len(metaRes))
	}
	var extra []datadogV2.MetricResource
	for i := 0; i < len(metaRes); i += 2 {
		if metaRes[i] == "" || metaRes[i+1] == "" {
			return v3Invalid("metadata.resources pair %d needs both type and name, got %q %q", i/2, metaRes[i], metaRes[i+1])
		}
		extra = append(extra, datadogV2.MetricResource{Type: &metaRes[i], Name: &metaRes[i+1]})
	}
	if len(metaTags) > 0 {
		for i, set := range d.tagsets {
			if rej := d.spend(len(metaTags), "the tag sets with the metadata tags"); rej != nil {
				return rej
			}
			for _, t := range metaTags {
				if !containsString(set, t) {
					set = append(set, t)
				}
			}
			d.tagsets[i] = set
		}
	}
	for i := 1; i < len(d.resources) && len(extra) > 0; i++ {
		if rej := d.spend(len(extra), "the resource sets with the metadata resources"); rej != nil {
			return rej
		}
		d.resources[i] = append(d.resources[i], extra...)
	}
	return nil
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// v3Strings decodes a string dictionary: varint length + bytes each, valid
// UTF-8, none empty (index 0 stands for the empty value). Entry 0 of the
// result is "".
func v3Strings(col string, raw []byte) ([]string, *rejection) {
	out := []string{""}
	for off := 0; off < len(raw); {
		n, k := binary.Uvarint(raw[off:])
		if k <= 0 {
			return nil, v3Undecodable("%s entry %d at byte %d: bad varint length", col, len(out), off)
		}
		off += k
		if n > uint64(len(raw)-off) {
			return nil, v3Undecodable("%s entry %d at byte %d: length %d runs past the end (%d bytes left)", col, len(out), off-k, n, len(raw)-off)
		}
		s := string(raw[off : off+int(n)])
		switch {
		case n == 0:
			return nil, v3Invalid("%s entry %d is empty: index 0 stands for the empty value", col, len(out))
		case !utf8.ValidString(s):
			return nil, v3Invalid("%s entry %d is not valid UTF-8: %q", col, len(out), s)
		}
		out = append(out, s)
		off += int(n)
	}
	return out, nil
}

// tagsetDict decodes dictTagsets: per set its length, then its tag indexes
// delta encoded within the set. A negative running index -k includes the
// earlier set k (the Agent's serializer writes a set as a shared prefix set
// plus its own tags this way); index 0, an empty tag, is refused as v2
// refuses empty tags. Entry 0 of the result is the empty set.
func (d *v3Decoder) tagsetDict(col []int64, tags []string) ([][]string, *rejection) {
	sets := [][]string{nil}
	for pos := 0; pos < len(col); {
		id := len(sets)
		size := col[pos]
		pos++
		if size <= 0 || size > int64(len(col)-pos) {
			return nil, v3Undecodable("dictTagsets set %d: length %d does not fit the %d entries left (index 0 stands for no tags)", id, size, len(col)-pos)
		}
		var set []string
		var idx int64
		for _, delta := range col[pos : pos+int(size)] {
			var ok bool
			if idx, ok = v3AddDelta(idx, delta); !ok {
				return nil, v3Undecodable("dictTagsets set %d: delta %d overflows int64 from %d", id, delta, idx)
			}
			switch {
			case idx == 0:
				return nil, v3Invalid("dictTagsets set %d: tag index 0 (an empty tag) is not allowed", id)
			case idx < 0 && -idx >= int64(id):
				return nil, v3Undecodable("dictTagsets set %d: reference %d to set %d, which is not an earlier set", id, idx, -idx)
			case idx < 0:
				if rej := d.spend(len(sets[-idx]), "the tag sets"); rej != nil {
					return nil, rej
				}
				set = append(set, sets[-idx]...)
			case idx >= int64(len(tags)):
				return nil, v3Undecodable("dictTagsets set %d: tag index %d after delta decoding is past the end of dictTagStr (%d entries, base 1)", id, idx, len(tags)-1)
			default:
				if rej := d.spend(1, "the tag sets"); rej != nil {
					return nil, rej
				}
				set = append(set, tags[idx])
			}
		}
		pos += int(size)
		sets = append(sets, set)
	}
	return sets, nil
}

// v3Resources decodes the resource sets: dictResourceLen gives each set's
// number of [type, name] pairs, whose indexes into dictResourceStr are in
// dictResourceType and dictResourceName, delta encoded within each set (as
// agent-payload's reference writer and the Agent's serializer write them).
// Both columns must be used up exactly. Entry 0 of the result is "none".
func v3Resources(lens, types, names []int64, strs []string) ([][]datadogV2.MetricResource, *rejection) {
	if len(types) != len(names) {
		return nil, v3Undecodable("dictResourceType has %d entries but dictResourceName has %d: one of each per resource", len(types), len(names))
	}
	sets := [][]datadogV2.MetricResource{nil}
	pos := 0
	for _, size := range lens {
		id := len(sets)
		if size <= 0 || size > int64(len(types)-pos) {
			return nil, v3Undecodable("dictResourceLen set %d: length %d does not fit the %d resources left (index 0 stands for none)", id, size, len(types)-pos)
		}
		set := make([]datadogV2.MetricResource, 0, size)
		var typ, name int64
		for range size {
			if rej := v3Ref("dictResourceType", pos, types[pos], &typ, len(strs), false); rej != nil {
				return nil, rej
			}
			if rej := v3Ref("dictResourceName", pos, names[pos], &name, len(strs), false); rej != nil {
				return nil, rej
			}
			set = append(set, datadogV2.MetricResource{Type: &strs[typ], Name: &strs[name]})
			pos++
		}
		sets = append(sets, set)
	}
	if pos != len(types) {
		return nil, v3Undecodable("dictResourceLen covers %d resources but dictResourceType and dictResourceName have %d", pos, len(types))
	}
	return sets, nil
}
