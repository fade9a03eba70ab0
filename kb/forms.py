"""Forms of the staff pages: field validation only; writes go through kb.services."""

from __future__ import annotations

from django import forms


class KnowledgeBaseForm(forms.Form):
    name = forms.CharField(max_length=200)
    languages = forms.CharField(max_length=50, initial="en", help_text="comma-separated, e.g. en,zh")
    chunk_size = forms.IntegerField(min_value=32, max_value=512, initial=200)
    chunk_overlap = forms.IntegerField(min_value=0, max_value=256, initial=30)
    top_k = forms.IntegerField(min_value=1, max_value=50, initial=5)

    def clean(self):
        data = super().clean()
        if data.get("chunk_overlap") is not None and data.get("chunk_size") is not None \
                and data["chunk_overlap"] >= data["chunk_size"]:
            raise forms.ValidationError("Chunk overlap must be smaller than the chunk size.")
        return data


class FaqEntryForm(forms.Form):
    question = forms.CharField(max_length=2000)
    answer = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}))
    alternatives = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                   help_text="other phrasings, one per line")

    def clean_alternatives(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["alternatives"].splitlines() if line.strip()]
